"""commands for people: status, health, sniff, reprocess, the demo, and the process that runs a
whole collector for them.
"""
