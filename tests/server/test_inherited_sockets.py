"""Sockets from LISTEN_FDS: only for the process LISTEN_PID names; malformed ones are errors.

The happy path over real descriptors runs under systemd-socket-activate
(tests/reliability/test_socket_activation.py) and at every worker start.
"""

from __future__ import annotations

import os

import pytest

from apiclub.errors import ListenError
from apiclub.server.inherited_sockets import take_inherited_sockets


def test_sockets_meant_for_another_process_are_not_taken() -> None:
    # A child that inherited its parent's variables (sd_listen_fds(3) checks LISTEN_PID).
    environ = {"LISTEN_FDS": "2", "LISTEN_PID": str(os.getppid()), "LISTEN_FDNAMES": "https:http"}
    assert take_inherited_sockets(environ) == {}


def test_no_variables_no_sockets() -> None:
    assert take_inherited_sockets({}) == {}


def test_a_malformed_count_is_an_error_naming_it() -> None:
    with pytest.raises(ListenError, match=r"LISTEN_FDS='two' is not a number"):
        take_inherited_sockets({"LISTEN_FDS": "two", "LISTEN_PID": str(os.getpid())})
