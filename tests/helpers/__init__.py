"""Helpers shared by every test folder: daemons and posttroll listeners (bus), ZMQ sockets
served from a thread (zmq_threads), stopping a child process for sure (processes), and the
2019 posttroll that our clients run (legacy_posttroll)."""
