"""The command line both compat scripts take, and the client it names."""
import argparse

from qdrant_client import QdrantClient


def parse(description, extra=None):
    """Reads --host, --http, --grpc, --prefer-grpc (and what `extra` adds to the
    parser); returns the arguments, the protocol's name and a client for braid."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--grpc", type=int, required=True)
    ap.add_argument("--prefer-grpc", action="store_true")
    ap.add_argument("--snapshots", default=None, help="the server's snapshots directory (ops.py)")
    if extra:
        extra(ap)
    args = ap.parse_args()
    proto = "gRPC" if args.prefer_grpc else "REST"
    client = QdrantClient(host=args.host, port=args.http, grpc_port=args.grpc, prefer_grpc=args.prefer_grpc, timeout=60)
    return args, proto, client


def refused(call, words, what):
    """Calls `call()` and checks the server refused it with an error naming `words`
    (the client raises its own error types per protocol); `what` says what was sent."""
    try:
        call()
    except Exception as e:  # noqa: BLE001 - the client's error type differs by protocol
        assert words in str(e), (what, e)
        return
    raise AssertionError(f"{what} was accepted")
