"""Files confined to root folders: space.py (``FileSpace``: listing, reading, writing), zips.py
(zip download and extraction) and service.py (``FileService``: which roots a user may reach).

Security note: every path a user gives is relative to a root and is checked on every operation:
NUL bytes, absolute paths, backslashes and '..' components are refused outright; the joined
path is then resolved (symlinks followed) and must stay inside the resolved root, so a symlink
that points outside is refused too. Zip extraction refuses entries that would land outside the
target, symlink entries, and archives past the entry-count and total-size limits (zip bombs),
and checks the sizes it actually writes, not the sizes the archive claims. Which roots a user
may read or write is decided by ``FileService.roots_for`` (own root; other users' for admins;
shared roots by role).
"""
