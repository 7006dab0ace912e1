"""Python environments: the registry (registry.py), requirement lines (requirements.py),
installed interpreters (interpreters.py), conda discovery (conda.py), the probe (probe.py), the
service (service.py) and the build job (build.py)."""
