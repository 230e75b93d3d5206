"""Consoles on the embedded default (libvirt's test driver, no real console bytes): the records
are there, `CONNECT /console` checks its caller and answers 404 (nothing to connect to), and no
vncterm runs. The real consoles are in test_consoles_kvm.py."""

import http.client

from .console_client import open_console, read_rest
from .events_support import login


def template(x, name):
    [t] = [ref for ref, rec in x.VM.get_all_records().items() if rec["is_a_template"] and rec["name_label"] == name]
    return t


def test_the_test_driver_has_console_records_but_nothing_to_connect_to(agent):
    s = login(agent)
    x = s.xenapi
    vm = x.VM.clone(template(x, "Debian Etch 4.0"), "console on test")
    x.VM.provision(vm)
    x.VM.start(vm, False, False)
    try:
        consoles = {x.console.get_protocol(c): c for c in x.VM.get_consoles(vm)}
        assert "rfb" in consoles
        for ref in consoles.values():
            uuid = x.console.get_uuid(ref)
            assert x.console.get_location(ref) == f"https://{x.host.get_address(x.host.get_all()[0])}/console?uuid={uuid}"
            for query in (f"ref={ref}", f"uuid={uuid}"):
                status, sock, head = open_console(agent.port, f"{query}&session_id={s._session}")
                assert status == 404, head
                assert read_rest(sock) == b"not found\n"  # and the connection closed
                sock.close()
                status, sock, head = open_console(agent.port, query)
                assert status == 401 and b'Basic realm="xapi"' in head
                sock.close()
        # the host's console: a vt100 record of the control domain, not served here (--host-console)
        dom0 = next(v for v in x.VM.get_all() if x.VM.get_is_control_domain(v))
        [host_console] = x.VM.get_consoles(dom0)
        status, sock, _ = open_console(agent.port, f"ref={host_console}&session_id={s._session}")
        assert status == 404
        sock.close()
        conn = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
        conn.request("GET", f"/console?uuid={x.VM.get_uuid(vm)}&session_id={s._session}")
        assert conn.getresponse().status == 405
        other = x.host.get_other_config(x.host.get_all()[0])
        assert "device-model-user" not in other  # the test driver runs no device model
        import os
        consoles_dir = os.path.join(agent.state_dir, "consoles")
        assert not os.path.isdir(consoles_dir) or not [f for f in os.listdir(consoles_dir) if f.endswith(".json")]
    finally:
        x.VM.hard_shutdown(vm)
        x.VM.destroy(vm)
        s.xenapi.session.logout()
