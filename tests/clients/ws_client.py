#!/usr/bin/env python3
"""ws_client — a WebSocket client built on Debian's python3-websockets, for
tests/test_websocket_python.cpp: it talks to examples/ws_server.cpp (which echoes every message
and sends each connection {"rtt_us": N}, the RTT its pings measured, every few hundred ms).

Usage: ws_client.py URL REPORTS MUTE_SECONDS

Two connections run at once:
  * "talk" exchanges text and binary messages, whole and fragmented (websockets sends an
    iterable as one fragmented message), pings the server once, then sends nothing while
    REPORTS RTT reports arrive (the server's pings, answered by websockets itself, must keep
    it open, and their RTT must have been measured), and closes with code 1000;
  * "mute" stops reading (its transport paused, so it answers no ping) for MUTE_SECONDS,
    then reads again and must find the connection gone without a close frame (1006).
websockets checks every frame evwheel sends (unmasked, no RSV bits, control frames small and
whole, text in UTF-8, valid close codes) and fails a connection that breaks a rule with 1002
or 1007, so a clean 1000 at the end means evwheel's frames passed.

Prints one line per check and "ok" last; exits 0 when every check held, 1 otherwise.
"""

import asyncio
import json
import sys

import websockets

REPORT_PREFIX = '{"rtt_us":'


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print(f"{what}: ok", flush=True)


async def next_echo(ws):
    """The next message that is not an RTT report."""
    while True:
        message = await ws.recv()
        if not (isinstance(message, str) and message.startswith(REPORT_PREFIX)):
            return message


async def echoes(ws, sent, what):
    await ws.send(sent)
    expected = sent if isinstance(sent, (str, bytes)) else type(sent[0])().join(sent)
    got = await asyncio.wait_for(next_echo(ws), 5)
    check(got == expected and type(got) is type(expected), what)


async def talk(url, reports):
    async with websockets.connect(url, ping_interval=None, close_timeout=5) as ws:
        await echoes(ws, "hello, évwheel ✓", "text echoed as text")
        await echoes(ws, bytes(range(256)), "binary echoed as binary")
        await echoes(ws, ["frag", "mented ", "text ✓"], "fragmented text arrives whole")
        await echoes(ws, [b"\x00\x01", b"\x02" * 1000, b"\xff"], "fragmented binary arrives whole")
        await echoes(ws, bytes(300_000), "a 300 kB message in one frame")
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)
        print("the server answers our ping: ok", flush=True)
        rtts = []
        while len(rtts) < reports:
            message = await asyncio.wait_for(ws.recv(), 5)
            check(isinstance(message, str) and message.startswith(REPORT_PREFIX), f"report {len(rtts) + 1}: {message}")
            rtts.append(json.loads(message)["rtt_us"])
        check(rtts[-1] > 0, "the server measured an RTT from its pings")
        await ws.close()
        check(ws.close_code == 1000, f"closed with 1000 (got {ws.close_code})")


async def mute(url, seconds):
    async with websockets.connect(url, ping_interval=None) as ws:
        await echoes(ws, "about to go quiet", "mute: open")
        ws.transport.pause_reading()
        await asyncio.sleep(seconds)
        ws.transport.resume_reading()
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except websockets.ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            check(code == 1006, f"mute: the server dropped us without a close frame (code {code})")


async def main():
    url, reports, mute_seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    await asyncio.gather(talk(url, reports), mute(url, mute_seconds))
    print("ok", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except Exception as error:  # any failure: one line saying which, status 1
        print(f"FAIL: {type(error).__name__}: {error}", flush=True)
        sys.exit(1)
