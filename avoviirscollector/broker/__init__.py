"""granules to workers: the queue's rules (pure), its SQLite store, the task_broker program and
the client workers use.
"""
