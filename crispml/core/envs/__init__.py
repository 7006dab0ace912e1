"""Python environments: the registry (registry.py), the service (service.py) and the build job
(build.py)."""
