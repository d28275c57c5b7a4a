#!/usr/bin/env python3
"""A faithful copy of the original multithreaded Python TCP ping server (see the original README).

One thread per client; each recv(1024) is answered with the uppercased bytes, or "LOST"
with a 20% chance. Kept for compatibility tests and benchmarks. Differences from the
original: address, port and loss rate come from arguments, and -q silences per-message logs.
"""
import random
import socket
import sys
import threading

host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
port = int(sys.argv[2]) if len(sys.argv) > 2 else 12001
loss = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
quiet = "-q" in sys.argv
lock = threading.Lock()


def log(line):
    if not quiet:
        with lock:
            print(line, flush=True)


def handle_client(client_socket, client_address):
    try:
        while True:
            message = client_socket.recv(1024)
            if not message:
                break
            log(f"Message sent by client = {message.decode(errors='replace')} from {client_address}")
            if random.random() < loss:
                log("Packet lost")
                client_socket.send(b"LOST")
                continue
            response = message.decode(errors="replace").upper()
            client_socket.send(response.encode())
            log(f"Response sent back = {response}")
    except OSError:
        pass
    finally:
        client_socket.close()


server_socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server_socket.bind((host, port))
server_socket.listen(1024)
print(f"Server Started Listening on {host}:{server_socket.getsockname()[1]}", flush=True)
while True:
    client_socket, client_address = server_socket.accept()
    client_thread = threading.Thread(target=handle_client, args=(client_socket, client_address), daemon=True)
    client_thread.start()
