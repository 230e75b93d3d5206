"""A Runtime for dispatcher tests: the real managers, a fake auth port, no storage."""

from hostagent.actions.context import Ports, Runtime
from hostagent.backends.auth import AuthenticationFailed
from hostagent.rpc.tasks import TaskManager


class FakeAuth:
    """Users and passwords in a dict (a test double of the auth port)."""

    def __init__(self):
        self.users = {"root": "secret"}

    async def authenticate(self, user, pwd):
        if self.users.get(user) != pwd:
            raise AuthenticationFailed()

    async def change_password(self, user, old, new):
        await self.authenticate(user, old)
        self.users[user] = new


async def _no_sleep(seconds):
    return None


def make_runtime(store, sessions, host, clock, tasks=None, events=None, sleep=_no_sleep, storage=None,
                 wait_durable=None):
    auth = FakeAuth()
    ports = Ports(storage=storage, intents=None, authenticate=auth.authenticate,
                  change_password=auth.change_password, auth_failure_delay=0.0)
    tasks = tasks or TaskManager(store, clock, lambda: host)
    return Runtime(store=store, sessions=sessions, tasks=tasks, events=events, ports=ports, host=host,
                   clock=clock, sleep=sleep, wait_durable=wait_durable)
