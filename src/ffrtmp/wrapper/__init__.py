"""The per-job wrapper: start or adopt one workload, follow it, record what happened.

A wrapper is a small, short-lived process per job (the shim pattern). It imports only the
standard library and ffrtmp's ground and model modules (files, layout, logs, config), so it
starts fast and never drags the agent's HTTP stack into a process that must outlive the agent.
Entry points: ``run.main`` and ``attach.main``.
"""
