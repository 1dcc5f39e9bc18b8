"""docker-py, imported without paramiko: every module imports docker-py from here.

docker-py imports its ssh transport, and with it paramiko, whenever paramiko is
installed (the ``ssh`` extra): about 0.13 s on every command, for a transport only
ssh:// daemons use.  So the first import hides paramiko, and docker-py leaves the
transport out as it does when paramiko is missing; :func:`ssh_transport` adds it back
when an ssh:// daemon is asked for.
"""

from __future__ import annotations

import sys

if "docker" not in sys.modules and "paramiko" not in sys.modules:
    sys.modules["paramiko"] = None  # type: ignore[assignment]  # `import paramiko` now raises ImportError
    try:
        import docker
    finally:
        del sys.modules["paramiko"]

import docker
import docker.api.client
import docker.auth
import docker.errors
import docker.tls
import docker.utils.build
import docker.utils.fnmatch

__all__ = ["docker", "ssh_transport"]


def ssh_transport() -> None:
    """Give docker-py the ssh transport the first import left out.  docker-py looks
    ``SSHHTTPAdapter`` up in its client module when an ssh:// client is made, so setting it
    there is all it needs; without paramiko it stays out, and docker-py says to install it."""
    if not hasattr(docker.api.client, "SSHHTTPAdapter"):
        try:
            from docker.transport.sshconn import SSHHTTPAdapter
        except ImportError:
            return

        docker.api.client.SSHHTTPAdapter = SSHHTTPAdapter
