"""what cron runs besides the mirror: the cron runner and its rules, retention cleanup, the TLE
download.
"""
