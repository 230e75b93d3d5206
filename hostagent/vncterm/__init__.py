"""vncterm: one text console (a pty) served as an RFB (VNC) desktop on 127.0.0.1.

Run as ``hostagent-vncterm`` (see ``hostagent-vncterm --help``), one process per console. The
screen is emulated with pyte, rendered with a bitmap console font shipped in ``data/``, and only
dirty regions are sent, in answer to each client's update requests. After opening its pty and
its listening socket the process drops to an unprivileged user inside an empty root directory.

This package is its own program: it imports neither Twisted nor the agent's server or actions.
"""
