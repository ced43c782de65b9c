#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/seeds/<target>/) from the
shared vectors (../shared/spa1-vectors.json), the shipped config, the key-file
formats and Debian's knockd.conf shape. Run from the repository root:
    python3 fuzz/seeds/make.py
Record layouts are documented atop each target in fuzz/fuzz_targets/."""
import base64, ipaddress, json, os, struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")
BASE_NOW_MS = 1_764_000_000_000
VECTOR_SECRET_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="


def write(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def source(ip):
    a = ipaddress.ip_address(ip)
    if a.version == 4:
        return bytes([0]) + a.packed
    return bytes([1]) + a.packed


def clock(now_ms):
    return struct.pack(">i", max(-2**31, min(2**31 - 1, now_ms - BASE_NOW_MS)))


def datagram_record(packet, now_ms, ip, flags=0):
    return bytes([flags, 0]) + clock(now_ms) + source(ip) + bytes([len(packet)]) + packet


def main():
    with open(os.path.join(ROOT, "..", "shared", "spa1-vectors.json")) as f:
        v = json.load(f)
    # verifier: every vector packet at its now and source; sequences as streams.
    for i, case in enumerate(v["valid"]):
        pkt = bytes.fromhex(case["packet_hex"])
        write("verifier", f"valid-{i}", datagram_record(pkt, case["timestamp_ms"], case["ip_source"]))
    for i, case in enumerate(v["invalid"]):
        pkt = bytes.fromhex(case["packet_hex"])[:255]
        write("verifier", f"invalid-{i}-{case['reason']}", datagram_record(pkt, case["now_ms"], case["ip_source"]))
    for i, seq in enumerate(v["sequences"]):
        data = b"".join(
            datagram_record(bytes.fromhex(s["packet_hex"])[:255], s["now_ms"], s["ip_source"])
            for s in seq["steps"])
        write("verifier", f"sequence-{i}", data)
    # verifier_sealed: the valid plaintexts, sealed with key 0 (the vectors' key
    # when the vector uses it), at their own timestamp, from the named address.
    for i, case in enumerate(v["valid"]):
        key = 0 if case["secret_b64"] == VECTOR_SECRET_B64 else 1
        pt = bytes.fromhex(case["plaintext_hex"])
        rec = bytes([key, 0, i]) + struct.pack(">i", 0) + pt + bytes([3])
        write("verifier_sealed", f"valid-{i}", rec + bytes([key, 0, i]) + struct.pack(">i", 5) + pt + bytes([3]))
    # config: the shipped config.
    with open(os.path.join(ROOT, "conf", "spad.toml")) as f:
        write("config", "spad.toml", f.read())
    # knock state files.
    write("state_files", "doors", "# spad open doors: door address until_ms\nssh 192.0.2.7 1764000030000\nssh 2001:db8::1 1764000060000\n")
    write("state_files", "one-time", "# smtp sequences\n 1000,2000,3000\n#1001,2001,3001\n\n 1002 2002:udp 3002\n")
    step = BASE_NOW_MS // 30_000
    write("journal", "bin", b"spaJRN1\n")


def more():
    # knockd.conf: the fixtures spad's import tests use (Debian's default among them).
    knockd = os.path.join(ROOT, "spad", "tests", "knockd")
    for name in sorted(os.listdir(knockd)):
        with open(os.path.join(knockd, name), "rb") as f:
            write("import_knockd", name, f.read())
    # Key files, in the format spa-keygen writes.
    k = "pdHSgikh7Qy6YPcaDbKI/A6j/8ji7RB3lLWVRb7tGcE="
    write("key_files", "server-entry", f'user = "alice"\nserver_id = "gw1.example.net"\nk_srv = "{k}"\ndoors = ["ssh", "admin"]\nexpires = 2027-01-31\nallow_observed = false\nrevoked = false\n')
    write("key_files", "client-key", f'user = "alice"\nsecret = "{VECTOR_SECRET_B64}"\n\n[[gateway]]\nserver_id = "gw1.example.net"\nhost = "gw1.example.net"\nport = 62210\n\n[gateway.knock.web]\nn = 4\nlo = 20000\nhi = 29999\nproto = "tcp"\n')
    # Configs with every door kind.
    write("config", "knock-doors.toml", 'server_id = "gw1.example.net"\nport = 62210\nskew_secs = 30\nreplay_cap = 32\n\n[doors.ssh]\nopen = ["tcp/22"]\n\n[doors.web]\nopen = ["tcp/443", "udp/443"]\nsequence = ["7000", "8000:udp", "9000:tcp"]\nseq_timeout_secs = 10\ntcpflags = "syn,!ack"\n\n[doors.rot]\nopen = ["tcp/2222"]\nrotating = { n = 4, lo = 20000, hi = 29999, proto = "udp" }\n\n[doors.cmd]\nbackend = "command"\nopen_command = "/bin/true %IP%"\nclose_command = "/bin/true %IP%"\ncommand_timeout_secs = 5\nsequence = ["7001"]\n')
    # The replay log: magic, a state record, two entries.
    rec = lambda key, nonce, ts, now: key + nonce + struct.pack(">QQ", ts, now)
    log = b"spaRPL1\n" + rec(bytes(16), bytes(12), BASE_NOW_MS + 30_000, BASE_NOW_MS)
    log += rec(bytes(range(16)), bytes([7] * 12), BASE_NOW_MS, 0) + rec(bytes(range(16)), bytes([8] * 12), BASE_NOW_MS - 1, 0)
    write("state_files", "replay-log", log)


def frames():
    """capture_filter: a port set (SPA 62210; TCP knocks 7000 and 20000-20002; UDP
    knock 7100) then frames of every shape the parser and the filter look at."""
    head = bytes([8]) + struct.pack(">H", 62210)
    head += bytes([1]) + struct.pack(">H", 7000)
    head += bytes([1]) + struct.pack(">HB", 20000, 2)
    head += bytes([1]) + struct.pack(">H", 7100)
    mac = bytes([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2])

    def eth(ethertype, l3, vlan=None):
        tag = struct.pack(">HH", 0x8100, vlan) if vlan is not None else b""
        return mac + tag + struct.pack(">H", ethertype) + l3

    def udp(sport, dport, payload):
        return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload

    def tcp(sport, dport, flags, seq=1, data=b""):
        return struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 0xffff, 0, 0) + data

    def ipv4(proto, segment, options=b"", frag=0):
        ihl = 5 + len(options) // 4
        total = ihl * 4 + len(segment)
        hdr = struct.pack(">BBHHHBBH", 0x40 | ihl, 0, total, 0x1234, frag, 64, proto, 0)
        return hdr + bytes([192, 0, 2, 7, 198, 51, 100, 1]) + options + segment

    def ipv6(nh, segment, src=bytes.fromhex("20010db8000000000000000000000007")):
        return struct.pack(">IHBB", 0x60000000, len(segment), nh, 64) + src + bytes.fromhex("20010db8000000000000000000000001") + segment

    spa = udp(40000, 62210, bytes(100))
    cases = {
        "v4-udp-spa": eth(0x0800, ipv4(17, spa)),
        "v4-udp-knock": eth(0x0800, ipv4(17, udp(40000, 7100, b"k"))),
        "v4-udp-other": eth(0x0800, ipv4(17, udp(40000, 53, b"x"))),
        "v4-options": eth(0x0800, ipv4(17, spa, options=bytes([0x94, 4, 0, 0]))),
        "v4-fragment": eth(0x0800, ipv4(17, spa, frag=0x2000)),
        "v4-padded": eth(0x0800, ipv4(17, udp(1, 62210, b"ab"))) + bytes(20),
        "v4-tcp-syn": eth(0x0800, ipv4(6, tcp(5555, 7000, 0x02))),
        "v4-tcp-synack": eth(0x0800, ipv4(6, tcp(5555, 20001, 0x12))),
        "v4-tcp-fin": eth(0x0800, ipv4(6, tcp(5555, 20002, 0x01))),
        "vlan-v4-udp": eth(0x0800, ipv4(17, spa), vlan=42)[:12] + struct.pack(">HH", 0x8100, 42) + struct.pack(">H", 0x0800) + ipv4(17, spa),
        "v6-udp-spa": eth(0x86dd, ipv6(17, spa)),
        "v6-mapped-src": eth(0x86dd, ipv6(17, spa, src=bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 7]))),
        "v6-tcp-syn": eth(0x86dd, ipv6(6, tcp(5555, 7000, 0x02))),
        "v6-hop-by-hop": eth(0x86dd, ipv6(0, bytes([17, 0, 5, 2, 0, 0, 1, 0]) + spa)),
        "vlan-v6-tcp": mac + struct.pack(">HHH", 0x8100, 7, 0x86dd) + ipv6(6, tcp(1, 20000, 0x02)),
    }
    for name, frame in cases.items():
        write("capture_filter", name, head + frame)
        write("capture_filter", name + "-truncated", head + frame[: len(frame) - 3])
    # Outgoing copies are dropped; a loopback link is let through.
    write("capture_filter", "outgoing", bytes([9]) + head[1:] + cases["v4-udp-spa"])
    write("capture_filter", "loopback", bytes([10]) + head[1:] + cases["v4-udp-spa"])


def fwknop():
    """fwknop, fwknop_sealed, fwknop_access_conf (layouts atop each target):
    the real client's packets (fwknop/tests/fixtures/packets.txt) from the
    stanzas' senders; plaintexts of every message type to seal; access.conf
    texts with every directive spa reads."""
    now = 1_796_129_212
    fixtures = os.path.join(ROOT, "fwknop", "tests", "fixtures", "packets.txt")
    with open(fixtures) as f:
        for line in f:
            name, ts, packet = line.split()
            shift = struct.pack("<h", int(ts) - now)
            for sender in (0, 3, 5):
                write("fwknop", f"{name}-{sender}", bytes([sender]) + shift + packet.encode())
    b64 = lambda t: base64.b64encode(t.encode()).decode().rstrip("=")
    random = "1234567890123456"
    plaintexts = {
        "access": f"{random}:{b64('root')}:{now}:3.0.0:1:{b64('192.0.2.7,tcp/22')}",
        "two-ports": f"{random}:{b64('root')}:{now}:3.0.0:1:{b64('192.0.2.7,tcp/22,udp/53')}",
        "unnamed": f"{random}:{b64('root')}:{now}:3.0.0:1:{b64('0.0.0.0,tcp/22')}",
        "v6": f"{random}:{b64('root')}:{now}:3.0.0:1:{b64('2001:db8::7,tcp/22')}",
        "timeout": f"{random}:{b64('root')}:{now}:3.0.0:3:{b64('198.51.100.9,tcp/8443')}:600",
        "nat": f"{random}:{b64('root')}:{now}:3.0.0:2:{b64('192.0.2.7,tcp/22')}:{b64('10.0.0.2,22')}",
        "server-auth": f"{random}:{b64('root')}:{now}:3.0.0:1:{b64('192.0.2.7,tcp/22')}:{b64('pw')}",
        "command": f"{random}:{b64('root')}:{now}:3.0.0:0:{b64('192.0.2.7,echo hi')}",
        "other-user": f"{random}:{b64('bob')}:{now}:3.0.0:1:{b64('192.0.2.7,tcp/443')}",
        "any-443": f"{random}:{b64('bob')}:{now}:2.6.10:1:{b64('10.9.9.9,tcp/443,udp/1194')}",
    }
    for name, text in plaintexts.items():
        for keys, sender in ((0, 0), (0, 3), (1, 5), (2, 0)):
            write("fwknop_sealed", f"{name}-{keys}-{sender}", bytes([keys, sender, 0, 0, 1 | (7 << 1)]) + text.encode())
    # Without the automatic digest: the fuzzer writes it (or a wrong one).
    write("fwknop_sealed", "raw-no-digest", bytes([0, 0, 0, 0, 0]) + plaintexts["access"].encode())
    key = "wHCG6pRmYWN2ipv7Ebp+D8q1lEZ8mXVLsuFXA/Fp6oY="
    hmac = "Mzo0rAOxwEHxqy0d5FzwqKpxtmRqg0cx3nAwzHp5Zc1LVn5YjzFuuNQuH3GYhEx3aqQ/SZ3GECHRT+f4jhsN6w=="
    confs = {
        "one": f"SOURCE ANY\nOPEN_PORTS tcp/22\nKEY_BASE64 {key}\nHMAC_KEY_BASE64 {hmac}\n",
        "every-directive": f"# fwknopd access.conf\nSOURCE 192.0.2.0/24, 2001:db8::/32;\n  OPEN_PORTS: tcp/22, udp/53, tcp/80\nRESTRICT_PORTS tcp/80\nKEY_BASE64 {key}\nHMAC_KEY_BASE64 {hmac}\nHMAC_DIGEST_TYPE SHA256\nFW_ACCESS_TIMEOUT 60\nMAX_FW_TIMEOUT 600\nREQUIRE_SOURCE_ADDRESS Y\nREQUIRE_USERNAME root\nACCESS_EXPIRE 12/31/2030\nENCRYPTION_MODE CBC\nDESTINATION ANY\n\nSOURCE 198.51.100.0/24\nOPEN_PORTS tcp/22\nKEY passphrase1\nHMAC_KEY passphrase2\nHMAC_DIGEST_TYPE SHA512\nACCESS_EXPIRE_EPOCH 1796129000\n",
        "refused": f"SOURCE ANY\nOPEN_PORTS tcp/22\nGPG_REMOTE_ID 1234\nKEY_BASE64 {key}\nFORCE_NAT 10.0.0.2 22\nCMD_CYCLE_OPEN /bin/true\nENABLE_CMD_EXEC Y\nKEY_BASE64 __CHANGEME__\n\nSOURCE 10.0.0.0/8\nOPEN_PORTS\n",
    }
    for name, text in confs.items():
        write("fwknop_access_conf", name, text)


main()
more()
frames()
fwknop()
