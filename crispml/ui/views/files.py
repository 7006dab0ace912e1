"""Files: browse, create, rename, move, delete, upload, download, preview; a lazy folder tree."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import streamlit as st

from crispml.core.data.loaders import TableLimits
from crispml.core.errors import CrispmlError
from crispml.core.files.space import Entry, FileSpace, SortKey
from crispml.core.files.zips import extract_zip
from crispml.ui import context
from crispml.ui import workspace as ws
from crispml.ui.widgets import feedback
from crispml.ui.widgets.confirm import confirm_button

ROOT = ws.user_key("files.root")
FOLDER = ws.user_key("files.folder")
SORT = ws.user_key("files.sort")
DESCENDING = ws.user_key("files.descending")
EXPANDED = "_crispml.files.expanded"
ITEM = "_crispml.files.item"
LAST_ROWS = "_crispml.files.last_rows"
PAGE = "_crispml.files.page"
PAGE_SIZE = 100
TEXT_TYPES = {
    "txt",
    "log",
    "py",
    "md",
    "json",
    "jsonl",
    "yaml",
    "yml",
    "toml",
    "cfg",
    "ini",
    "csv",
    "tsv",
    "sh",
    "sql",
    "xml",
    "html",
    "svg",
}
IMAGE_TYPES = {"png", "jpg", "jpeg", "gif", "webp", "bmp"}


def file_url(space: FileSpace, path: str, **query: str) -> str:
    url = f"/files/{quote(space.root.id)}/{quote(path)}"
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def current_space() -> FileSpace:
    """The root chosen in the workspace, if the user may still reach it, else their own."""
    user = context.current_user()
    files = context.services().files
    roots = files.roots_for(user.username, user.role)
    ids = [r.id for r in roots]
    chosen = st.session_state.get(ROOT)
    if not isinstance(chosen, str) or (chosen not in ids and not user.is_admin):
        chosen = ids[0]
    try:
        return files.space(user.username, user.role, chosen)
    except CrispmlError:
        st.session_state[ROOT] = ids[0]
        return files.space(user.username, user.role, ids[0])


def current_folder(space: FileSpace) -> str:
    folder = st.session_state.get(FOLDER, "")
    try:
        real = space.resolve(folder if isinstance(folder, str) else "")
        if real.is_dir():
            return space.relative(real) if real != space.root.path.resolve() else ""
    except CrispmlError:
        pass
    return ""


def _go(folder: str) -> None:
    ws.set_value(FOLDER, folder)
    st.session_state[PAGE] = 1
    st.session_state.pop("files.table", None)
    st.session_state.pop(ITEM, None)


def _choose_root(root_id: str) -> None:
    ws.set_value(ROOT, root_id)
    _go("")


def _root_picker(space: FileSpace) -> None:
    user = context.current_user()
    files = context.services().files
    roots = {
        r.id: r.label + ("" if r.writable else " (read-only)")
        for r in files.roots_for(user.username, user.role)
    }
    if user.is_admin:
        for other in context.services().auth.list_users():
            roots.setdefault(f"~{other.username}", f"{other.username}'s files")
    ids = list(roots)
    index = ids.index(space.root.id) if space.root.id in ids else 0
    chosen = st.selectbox(
        "Root folder",
        ids,
        index=index,
        format_func=roots.__getitem__,
        key="_crispml.files.root_select",
    )
    if chosen != space.root.id:
        _choose_root(chosen)
        st.rerun()


def _breadcrumb(space: FileSpace, folder: str) -> None:
    parts = folder.split("/") if folder else []
    cols = st.columns([1] * (len(parts) + 1) + [max(1, 6 - len(parts))], gap="small")
    cols[0].button(
        f":material/home: {space.root.label}",
        key="crumb-root",
        on_click=_go,
        args=("",),
        type="tertiary",
    )
    for i, part in enumerate(parts):
        cols[i + 1].button(
            f"/ {part}",
            key=f"crumb-{i}",
            on_click=_go,
            args=("/".join(parts[: i + 1]),),
            type="tertiary",
        )


def _tree(space: FileSpace, folder: str, current: str, depth: int = 0) -> None:
    """Folders, expanded on demand: only expanded folders are read (a deep tree opens fast)."""
    expanded: set[str] = st.session_state.setdefault(EXPANDED, set())
    try:
        names = space.folders(folder)
    except CrispmlError:
        return
    for name in names[:200]:
        path = f"{folder}/{name}" if folder else name
        is_open = path in expanded or current == path or current.startswith(path + "/")
        icon = ":material/folder_open:" if is_open else ":material/folder:"
        label = "\u2003" * depth + f"{icon} {name}"
        if st.button(label, key=f"tree-{path}", type="tertiary"):
            (expanded.discard if path in expanded else expanded.add)(path)
            _go(path)
            st.rerun()
        if is_open:
            _tree(space, path, current, depth + 1)
    if len(names) > 200:
        st.caption("\u2003" * depth + f"… {len(names) - 200} more folders")


def _upload(space: FileSpace, folder: str) -> None:
    service = context.services().files
    with st.form("upload", clear_on_submit=True, border=False):
        whole_folder = st.toggle("Upload a whole folder", key="files.upload_folder")
        uploads = st.file_uploader(
            "Files",
            accept_multiple_files="directory" if whole_folder else True,
            key="files.uploads",
        )
        extract = st.checkbox("Extract zip archives here", key="files.extract")
        overwrite = st.checkbox("Replace files that already exist", key="files.overwrite")
        if not st.form_submit_button("Upload", type="primary"):
            return
    if not uploads:
        feedback.error("Choose one or more files first.")
        return
    done, errors = [], []
    progress = st.progress(0.0, text="Uploading…")
    for i, upload in enumerate(uploads):
        try:
            rel = space.write_path(
                folder,
                upload.name,
                upload.getvalue(),
                max_bytes=service.max_upload_bytes,
                overwrite=overwrite,
            )
            if extract and upload.name.lower().endswith(".zip"):
                count = extract_zip(space, rel, folder, service.zip_limits)
                space.delete(rel)
                done.append(f"{upload.name} ({count} files extracted)")
            else:
                done.append(upload.name)
        except CrispmlError as exc:
            errors.append(f"{upload.name}: {exc}")
        except OSError as exc:
            errors.append(f"{upload.name}: could not be written ({exc.strerror or exc}).")
        progress.progress((i + 1) / len(uploads), text=f"Uploaded {i + 1} of {len(uploads)}")
    progress.empty()
    for message in errors:
        feedback.error(message)
    if done and not errors:
        feedback.done("Uploaded " + ", ".join(done) + ".")
    elif done:
        st.success("Uploaded " + ", ".join(done) + ".", icon=":material/check_circle:")


def _new_folder(space: FileSpace, folder: str) -> None:
    with st.form("new-folder", clear_on_submit=True, border=False):
        name = st.text_input("Folder name", max_chars=255)
        if st.form_submit_button("Create folder"):
            try:
                created = space.mkdir(folder, name)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Created folder '{created}'.")


def _preview(space: FileSpace, entry: Entry) -> None:
    try:
        if entry.kind in ("csv", "tsv", "parquet"):
            import pandas as pd

            if entry.kind == "parquet":  # the first rows only, never the whole file
                import pyarrow.parquet as pq

                with space.open_read(entry.path) as f:
                    parquet = pq.ParquetFile(f)
                    meta = parquet.metadata
                    if meta.num_columns > TableLimits().max_columns:
                        raise ValueError(f"{meta.num_columns:,} columns")
                    if meta.num_row_groups and meta.row_group(0).total_byte_size > 200_000_000:
                        raise ValueError("its first row group unpacks to more than 200 MB")
                    first = next(parquet.iter_batches(batch_size=100), None)
                    frame = first.to_pandas() if first is not None else pd.DataFrame()
            else:
                head = space.read_head(entry.path, 1_000_000)
                frame = pd.read_csv(
                    io.BytesIO(head),
                    sep="\t" if entry.kind == "tsv" else ",",
                    nrows=100,
                    on_bad_lines="skip",
                )
            st.dataframe(frame, width="stretch", height=300)
            st.caption(f"The first {len(frame)} rows.")
        elif entry.kind in IMAGE_TYPES:
            st.image(space.read_head(entry.path, 20_000_000), caption=entry.name)
        elif entry.kind == "json":
            st.json(json.loads(space.read_head(entry.path, 2_000_000)), expanded=1)
        elif entry.kind == "md":
            st.markdown(space.read_head(entry.path).decode("utf-8", "replace"))
        elif entry.kind in TEXT_TYPES:
            st.code(space.read_head(entry.path).decode("utf-8", "replace"), language=None)
        else:
            st.caption("No preview for this type.")
    except CrispmlError as exc:
        feedback.error(exc)
    except Exception as exc:  # a damaged file: say so, do not break the page
        feedback.error(f"'{entry.name}' cannot be previewed: {exc}")
    st.caption(
        f"{entry.kind} · {entry.size:,} bytes · modified {entry.modified:%Y-%m-%d %H:%M} UTC"
    )


def _actions(space: FileSpace, entry: Entry) -> None:
    st.markdown(f"**{entry.name}**")
    if entry.is_dir:
        st.button(
            ":material/folder_open: Open folder",
            key="open-folder",
            on_click=_go,
            args=(entry.path,),
        )
        st.link_button(":material/download: Download as zip", file_url(space, entry.path, zip="1"))
    else:
        left, right = st.columns(2)
        left.link_button(":material/open_in_new: Open in new tab", file_url(space, entry.path))
        right.link_button(":material/download: Download", file_url(space, entry.path, download="1"))
    if space.root.writable:
        new_name = st.text_input("Rename to", value=entry.name, key=f"rename-{entry.path}")
        if st.button("Rename", key=f"rename-go-{entry.path}"):
            try:
                space.rename(entry.path, new_name)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Renamed '{entry.name}' to '{new_name.strip()}'.")
        target = st.text_input(
            "Move to folder (path from the root, empty for the root)", key=f"move-{entry.path}"
        )
        if st.button("Move", key=f"move-go-{entry.path}"):
            try:
                moved = space.move(entry.path, target)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                feedback.done(f"Moved '{entry.name}' to '{moved}'.")
        count = space.count_files(entry.path) if entry.is_dir else 1
        what = (
            f"the folder '{entry.name}' and the {count} file{'s' if count != 1 else ''} in it"
            if entry.is_dir
            else f"'{entry.name}'"
        )
        if confirm_button(
            "Delete", key=f"delete-{entry.path}", message=f"Delete {what}? This cannot be undone."
        ):
            try:
                gone = space.delete(entry.path)
            except CrispmlError as exc:
                feedback.error(exc)
            else:
                st.session_state.pop("files.table", None)
                st.session_state.pop(ITEM, None)
                feedback.done(f"Deleted '{entry.name}' ({gone} file{'s' if gone != 1 else ''}).")
    if not entry.is_dir:
        with st.expander("Preview", expanded=True):
            _preview(space, entry)


def render() -> None:
    st.title("Files")
    st.caption("Your files on the server: datasets in, models and reports out.")
    feedback.show_pending()
    space = current_space()
    folder = current_folder(space)
    _root_picker(space)
    _breadcrumb(space, folder)
    tree_col, main_col = st.columns([1, 3], gap="medium")
    with tree_col:
        st.caption("Folders")
        _tree(space, "", folder)
    with main_col:
        if space.root.writable:
            new, up, zipped = st.columns(3)
            with new.popover(":material/create_new_folder: New folder", width="stretch"):
                _new_folder(space, folder)
            with up.popover(":material/upload: Upload", width="stretch"):
                _upload(space, folder)
            zipped.link_button(
                ":material/folder_zip: Folder as zip",
                file_url(space, folder, zip="1"),
                width="stretch",
            )
        else:
            st.caption(":material/lock: Read-only folder.")
        sort_col, order_col, page_col = st.columns([2, 1, 1])
        ws.default(SORT, "name")
        if st.session_state.get(SORT) not in ("name", "type", "size", "modified"):
            st.session_state[SORT] = "name"
        sort: SortKey = sort_col.selectbox(
            "Sort by", ["name", "type", "size", "modified"], key=SORT
        )
        descending = order_col.toggle("Descending", key=DESCENDING)
        page = int(st.session_state.get(PAGE, 1))
        try:
            listing = space.listing(
                folder, sort=sort, descending=bool(descending), page=page, page_size=PAGE_SIZE
            )
        except CrispmlError as exc:
            feedback.error(exc)
            return
        if listing.pages > 1:
            page = page_col.number_input("Page", 1, listing.pages, value=listing.page, key=PAGE)
        if not listing.entries:
            st.info(
                "This folder is empty. Upload files or create a folder.", icon=":material/info:"
            )
            return
        rows = [
            {
                "Name": ("📁 " if e.is_dir else "") + e.name,
                "Type": e.kind,
                "Size": "" if e.is_dir else f"{e.size:,}",
                "Modified (UTC)": f"{e.modified:%Y-%m-%d %H:%M}",
            }
            for e in listing.entries
        ]
        event = st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            on_select="rerun",
            selection_mode="single-row",
            key="files.table",
        )
        st.caption(
            f"{listing.total:,} item{'s' if listing.total != 1 else ''} · page "
            f"{listing.page} of {listing.pages}. Select a row, or choose below."
        )
        # The grid is a canvas: the selectbox is the keyboard- and screen-reader-friendly way
        # to choose, and follows the grid's selection.
        names = [e.name for e in listing.entries]
        rows_selected = list(event.selection.rows) if event is not None else []
        if rows_selected != st.session_state.get(LAST_ROWS):
            st.session_state[LAST_ROWS] = rows_selected
            if rows_selected and rows_selected[0] < len(names):
                st.session_state[ITEM] = names[rows_selected[0]]
        if st.session_state.get(ITEM) not in names:
            st.session_state[ITEM] = None
        chosen = st.selectbox(
            "Item", names, key=ITEM, placeholder="Choose a file or folder for actions"
        )
        if chosen is not None:
            _actions(space, listing.entries[names.index(chosen)])
