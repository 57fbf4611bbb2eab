#!/usr/bin/python3
"""A real SMTP server for Handoff's mail tests (aiosmtpd, Debian's python3-aiosmtpd).

    /usr/bin/python3 tests/smtp/server.py --port 2525 --dir /tmp/mails [--refuse]

Every message it accepts is written whole (headers and body, as received) to DIR as
<n>.eml, after two lines of its own (X-Envelope-To, X-Received-At in epoch ms: when the
message was accepted, for bench/mail.sh), then renamed into place, so a reader never sees half a file. With --refuse it
answers every recipient "550 5.1.1 mailbox unavailable", as a server refusing the address
would. It prints "ready <port>" once it listens, and runs until killed.
"""
import argparse
import asyncio
import os
import signal
import time
import sys

from aiosmtpd.controller import Controller


class Handler:
    def __init__(self, folder, refuse):
        self.folder = folder
        self.refuse = refuse
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.folder, f"{self.count:05d}.eml")
        with open(path + ".part", "wb") as f:
            f.write(b"X-Envelope-To: " + ", ".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(b"X-Received-At: " + str(int(time.time() * 1000)).encode() + b"\r\n")
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".part", path)
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--refuse", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Handler(args.dir, args.refuse), hostname="127.0.0.1", port=args.port)
    controller.start()
    print(f"ready {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.run_until_complete(stop.wait())
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
