"""Record every StatsD datagram arriving on UDP 9125, one metric line per file line (e2e tests only)."""

import socket
import sys

out_path = sys.argv[1]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("0.0.0.0", 9125))
with open(out_path, "a", buffering=1) as out:
    while True:
        datagram, _ = sock.recvfrom(65535)
        for line in datagram.decode(errors="replace").splitlines():
            if line.strip():
                out.write(line.strip() + "\n")
