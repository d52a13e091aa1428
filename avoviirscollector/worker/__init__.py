"""tasks to images: the reference worker, a client of the broker that makes a quick-look PNG
of each task with satpy (the ``worker`` extra).
"""
