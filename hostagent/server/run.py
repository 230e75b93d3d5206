"""Run an agent in the foreground until SIGTERM or SIGINT."""

import gc
import logging
import sys

from twisted.internet.defer import Deferred
from twisted.logger import STDLibLogObserver, globalLogBeginner

from ..db.journal import JournalError
from ..pool.identity import IdentityError
from ..pool.role import RoleError
from .wiring import Agent

log = logging.getLogger("hostagent")


def serve(config) -> int:
    logging.basicConfig(level=getattr(logging, config.log_level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    globalLogBeginner.beginLoggingTo([STDLibLogObserver(name="twisted")], redirectStandardIO=False)
    from twisted.internet import reactor

    status = {"code": 0}
    try:
        agent = Agent(config, reactor)
    except (JournalError, IdentityError, RoleError) as e:
        log.error("cannot start: %s", e)
        return 1

    async def start():
        await agent.start()
        # everything built so far lives as long as the process: keep it out of the
        # cyclic collector's scans, which otherwise show up as pauses under load
        gc.freeze()
        agent.banner()
        log.info("hostagent ready (state dir %s, libvirt %s, auth %s)",
                 config.state_dir, config.libvirt_uri, config.auth)

    def failed(failure):
        log.error("cannot start: %s", failure.getErrorMessage())
        status["code"] = 1
        reactor.stop()

    async def shutdown():
        log.info("stopping")
        await agent.stop()

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(shutdown()))
    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(start()).addErrback(failed))
    reactor.run()
    return status["code"] or agent.exit_code
