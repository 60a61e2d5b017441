#!/usr/bin/env python3
"""Regenerates cachemacro-runtime/src/store/memcached/ketama_vectors.txt with a reference client.

libmemcached (through pylibmc, behaviour `ketama_weighted`) stores 300 keys on three
real memcached servers; asking each server which keys it holds gives the reference
routing that `KetamaRing` must reproduce. Needs `memcached`, `libmemcached-dev` and
`pip install pylibmc`; not part of the test suite, which only reads the vectors.
"""
import subprocess
import sys
import time

import pylibmc

# 11211 is memcached's default port, which libmemcached leaves out of its point labels.
PORTS = [11211, 21212, 21213]
KEYS = [f"key:{n}" for n in range(200)] + [f"cachemacro:books:{n:04x}" for n in range(100)]


def main() -> None:
    servers = [subprocess.Popen(["memcached", "-l", "127.0.0.1", "-p", str(port), "-u", "root"]) for port in PORTS]
    try:
        time.sleep(0.5)
        names = [f"127.0.0.1:{port}" for port in PORTS]
        ring = pylibmc.Client(names, binary=True, behaviors={"ketama_weighted": True})
        for key in KEYS:
            ring.set(key, "1")
        singles = [pylibmc.Client([name], binary=True) for name in names]
        out = sys.stdout
        out.write("# libmemcached " + pylibmc.libmemcached_version + " ketama_weighted routing over\n")
        out.write("# servers: " + " ".join(names) + "\n# key<TAB>server index\n")
        for key in KEYS:
            owners = [index for index, single in enumerate(singles) if single.get(key) is not None]
            assert len(owners) == 1, (key, owners)
            out.write(f"{key}\t{owners[0]}\n")
    finally:
        for server in servers:
            server.kill()


if __name__ == "__main__":
    main()
