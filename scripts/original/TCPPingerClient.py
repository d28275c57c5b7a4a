#!/usr/bin/env python3
"""A faithful copy of the original Python TCP ping client (see the original README).

Kept for compatibility tests and benchmarks. Differences from the original: the server
address and the count may be given as arguments (the original had them hard-coded / asked),
and RTT_US lines with microseconds are printed when TCPPING_PY_MACHINE=1 (for benchmarks).
"""
import datetime
import os
import socket
import sys
import time

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 12001
server_addr = (host, port)

if len(sys.argv) > 3:
    n = int(sys.argv[3])
else:
    n = int(input("Enter number of pings (N): "))

machine = os.environ.get("TCPPING_PY_MACHINE") == "1"
rtts = []
lost = 0
for i in range(1, n + 1):
    client_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client_socket.settimeout(1)
    try:
        client_socket.connect(server_addr)
        print("Client Connection Successful..")
        message = f"ping {i} {datetime.datetime.now()}"
        start = time.time()
        client_socket.send(message.encode())
        data = client_socket.recv(1024)
        end = time.time()
        response = data.decode()
        if response == "LOST":
            print(f"Packet {i} lost")
            lost += 1
        else:
            print("Response received is:", response)
            rtt = (end - start) * 1000
            rtts.append(rtt)
            print(f"RTT (in milliseconds) of packet {i} is {rtt:f}")
            if machine:
                print(f"RTT_US {i} {rtt * 1000:.1f}")
    except socket.timeout:
        print(f"Packet {i} lost")
        lost += 1
    finally:
        client_socket.close()

if rtts:
    print(f"Maximum RTT (in milliseconds) = {max(rtts):f}")
    print(f"Minimum RTT (in milliseconds) = {min(rtts):f}")
    print(f"Average RTT (in milliseconds) = {sum(rtts) / len(rtts):f}")
print(f"Packet loss rate: {lost / n * 100:f}%")
