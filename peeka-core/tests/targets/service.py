"""Target of the client tests: a small service with functions to probe.

Besides its own work it adds one test fixture to the agent once an agent is
loaded (found in ``sys.modules``): the streaming command ``tick``, so the
client's stream handling (multiplexing, cancel, drop, overload) is tested
against the real agent before and independently of the probe commands.
``tick`` params: ``interval`` (seconds between observations, default 0.01),
``times`` (end after that many), ``burst`` (emit as fast as possible),
``delay`` (seconds to wait before answering: a request that is slow on
purpose, for the client's timeouts).
Observations: ``{"n": <count>}``.

Prints ``ready`` once serving.
"""
import sys
import threading
import time


class Cart(object):
    def __init__(self):
        self.items = []

    def add(self, name, price):
        self.items.append((name, price))
        return len(self.items)

    def total(self):
        return round(sum(price for _, price in self.items), 2)


def work(n, label="x"):
    return n * 2


def fail(n):
    raise ValueError("bad order %d" % n)


def hot():
    return 1


def serve():
    cart = Cart()
    n = 0
    while True:
        n += 1
        work(n, label="tick")
        cart.add("item%d" % (n % 10), 0.5)
        cart.total()
        if len(cart.items) > 50:
            cart.items = []
        if n % 5 == 0:
            try:
                fail(n)
            except ValueError:
                pass
        time.sleep(0.005)


def hot_loop():
    while True:
        hot()


def make_tick(agent):
    def tick(ctx):
        interval = ctx.param("interval", float, default=0.01, minimum=0)
        times = ctx.param("times", int, default=None, minimum=1)
        burst = ctx.param("burst", bool, default=False)
        delay = ctx.param("delay", float, default=0.0, minimum=0)
        if delay:
            time.sleep(min(delay, 5.0))
        stream = ctx.open_stream(max_items=times)

        def run():
            emit = stream.emit
            n = 0
            while not stream.closed:
                emit({"n": n})
                n += 1
                if burst:
                    # Let the agent's own threads (and the target's) run.
                    if n % 512 == 0:
                        time.sleep(0.001)
                elif agent.stopping.wait(interval):
                    return

        ctx.agent.spawn("tick-%d" % stream.id, run)
        return {"interval": interval, "burst": burst}

    return tick


def install_fixtures():
    seen = set()
    while True:
        for name, module in list(sys.modules.items()):
            if not name.startswith("_peeka_agent_") or "." in name:
                continue
            current = getattr(module, "current_agent", None)
            agent = current() if current is not None else None
            if agent is not None and id(agent) not in seen:
                seen.add(id(agent))
                agent.register_command("tick", make_tick(agent))
        time.sleep(0.01)


def main():
    threading.Thread(target=install_fixtures, name="fixtures", daemon=True).start()
    if "--hot" in sys.argv:
        threading.Thread(target=hot_loop, name="hot", daemon=True).start()
    print("ready", flush=True)
    serve()


if __name__ == "__main__":
    main()
