"""event: register/next queues and the event.from long poll."""


def _alive(ctx):
    return lambda: ctx.store.exists("session", ctx.session)


def register(ctx, classes):
    ctx.events.register(ctx.session, classes)
    return ""


def unregister(ctx, classes):
    ctx.events.unregister(ctx.session, classes)
    return ""


async def next_(ctx):
    return await ctx.events.next(ctx.session, _alive(ctx))


async def from_(ctx, classes, token, timeout):
    return await ctx.events.from_(ctx.session, classes, token, timeout, _alive(ctx))


def get_current_id(ctx):
    return ctx.events.gen + 1


def inject(ctx, cls, ref):
    return ctx.events.inject(cls, ref)


HANDLERS = {
    "event.register": register,
    "event.unregister": unregister,
    "event.next": next_,
    "event.from": from_,
    "event.get_current_id": get_current_id,
    "event.inject": inject,
}
