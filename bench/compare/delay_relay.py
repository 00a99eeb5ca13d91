"""A TCP relay that adds latency, for SSH benchmarks on a kernel without netem.

    python3 delay_relay.py RTT_MS LISTEN_IP:PORT=TARGET_IP:PORT [...]

Every byte that crosses the relay, in either direction, is held for RTT_MS / 2 before it is
passed on, so a round trip through it takes RTT_MS longer; bandwidth is not limited and order
is kept. One listener per mapping (e.g. 127.0.1.2:2222=10.213.130.2:22). Prints "ready" once
every listener is up, then runs until killed.
"""

import asyncio
import sys
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except OSError:
            pass

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((time.monotonic() + delay, None))
    try:
        await sender
    except OSError:
        pass


def handler(target_host, target_port, delay):
    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, up_writer, delay),
            pump(up_reader, client_writer, delay),
        )
        up_writer.close()
        client_writer.close()

    return handle


async def main():
    rtt_ms = float(sys.argv[1])
    delay = rtt_ms / 2000.0
    servers = []
    for mapping in sys.argv[2:]:
        listen, target = mapping.split("=")
        lhost, lport = listen.rsplit(":", 1)
        thost, tport = target.rsplit(":", 1)
        servers.append(
            await asyncio.start_server(handler(thost, int(tport), delay), lhost, int(lport))
        )
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
