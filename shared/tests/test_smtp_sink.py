"""The development SMTP sink, spoken to with raw sockets: complete messages are stored, interrupted ones are not."""

import email
import email.policy
import mailbox
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from netvaerk_testing.infra import free_port
from netvaerk_testing.smtp_sink import start_sink

SHARED_SRC = Path(__file__).resolve().parents[1] / "src"


def stored(path) -> list[email.message.EmailMessage]:
    box = mailbox.Maildir(path, create=False)
    return [email.message_from_bytes(box.get_bytes(key), policy=email.policy.default) for key in box.keys()]


class RawClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        while True:
            line = self.file.readline()
            if line[3:4] != b"-":
                return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def start_data(self, subject: str) -> None:
        assert self.command(b"EHLO client.test").startswith(b"250")
        assert self.command(b"MAIL FROM:<netvaerk@danskit.example.org>").startswith(b"250")
        assert self.command(b"RCPT TO:<mette.jensen@kommune.example.org>").startswith(b"250")
        assert self.command(b"DATA").startswith(b"354")
        self.sock.sendall(f"Subject: {subject}\r\nFrom: netvaerk@danskit.example.org\r\n\r\nHej\r\n".encode())

    def close(self, *, reset: bool = False) -> None:
        if reset:  # RST instead of FIN, as when the sending process is killed hard
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.file.close()
        self.sock.close()


@pytest.fixture
def sink(tmp_path):
    maildir = tmp_path / "var" / "mail"  # parent folders do not exist yet
    port = free_port()
    controller = start_sink("127.0.0.1", port, maildir)
    yield port, maildir
    controller.stop()


def test_complete_message_is_stored_with_received_at_and_envelope(sink):
    port, maildir = sink
    client = RawClient(port)
    client.start_data("hel")
    assert client.command(b".").startswith(b"250")
    assert client.command(b"QUIT").startswith(b"221")
    client.close()

    [message] = stored(maildir)
    assert message["Subject"] == "hel"
    assert message.get_content().strip() == "Hej"
    assert datetime.fromisoformat(message["X-Netvaerk-Received-At"]).utcoffset().total_seconds() == 0
    assert message["X-Netvaerk-Mail-From"] == "netvaerk@danskit.example.org"
    assert message["X-Netvaerk-Rcpt-To"] == "mette.jensen@kommune.example.org"


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_data_cut_off_before_the_final_dot_is_not_stored(sink, reset):
    port, maildir = sink
    client = RawClient(port)
    client.start_data("afbrudt")
    client.close(reset=reset)
    time.sleep(0.2)

    # A complete message afterwards proves the sink is alive and has dealt with the dropped connection.
    other = RawClient(port)
    other.start_data("hel")
    assert other.command(b".").startswith(b"250")
    other.close()
    time.sleep(0.1)
    assert [m["Subject"] for m in stored(maildir)] == ["hel"]


def test_cli_runs_until_sigterm(tmp_path):
    port = free_port()
    maildir = tmp_path / "mail"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SHARED_SRC), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netvaerk_testing.smtp_sink",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--maildir",
            str(maildir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client = RawClient(port)
                break
            except OSError:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "sink did not start"
                time.sleep(0.05)
        client.start_data("via cli")
        assert client.command(b".").startswith(b"250")
        client.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [m["Subject"] for m in stored(maildir)] == ["via cli"]
