"""The baseline of bench/rpc_throughput.py: a bare Twisted XML-RPC server.

    python bench/_baseline_xmlrpc_server.py RECORD.xml [--listen HOST:PORT]

Serves `VM.get_record(session, ref)` with Twisted's own `twisted.web.xmlrpc.XMLRPC`
(xmlrpc.client marshalling), answering the XenAPI envelope {"Status": "Success",
"Value": <the record>} and ignoring both arguments. RECORD.xml holds the record as
xmlrpc.client.dumps((record,)) wrote it, so its types (dateTime included) survive. Prints
"baseline listening on PORT" once it listens, then runs until SIGTERM. The Site is
configured as hostagent's is (no access log, no form decoding of POST bodies), so
the comparison is between the XML-RPC layers, not between Site options.
"""

import argparse
import sys
import xmlrpc.client

from twisted.internet import endpoints, reactor
from twisted.web import server
from twisted.web import xmlrpc as txmlrpc


class Baseline(txmlrpc.XMLRPC):
    """Wire names "Class.message" map to methods xmlrpc_Class_message."""

    def __init__(self, record):
        super().__init__()
        self.reply = {"Status": "Success", "Value": record}

    def lookupProcedure(self, procedurePath):
        f = getattr(self, "xmlrpc_" + procedurePath.replace(".", "_"), None)
        if f is None:
            raise txmlrpc.NoSuchFunction(self.NOT_FOUND, f"procedure {procedurePath} not found")
        return f

    def xmlrpc_VM_get_record(self, session, ref):
        return self.reply


class QuietSite(server.Site):
    def log(self, request):
        pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("record", help="file holding xmlrpc.client.dumps((record,)) of the VM record")
    ap.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    args = ap.parse_args(argv)
    with open(args.record, "rb") as f:
        (record,), _ = xmlrpc.client.loads(f.read())
    host, _, port = args.listen.rpartition(":")

    def listening(p):
        print(f"baseline listening on {p.getHost().port}", flush=True)

    def failed(failure):
        print(f"baseline: cannot listen: {failure.getErrorMessage()}", file=sys.stderr, flush=True)
        reactor.stop()

    ep = endpoints.TCP4ServerEndpoint(reactor, int(port), interface=host)
    site = QuietSite(Baseline(record), parsePOSTFormSubmission=False)
    ep.listen(site).addCallbacks(listening, failed)
    reactor.run()  # stops on SIGTERM/SIGINT


if __name__ == "__main__":
    main()
