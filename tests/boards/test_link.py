"""HostLink (protocol gateware) in Amaranth's simulator; the testbench plays host and core.

The stand-in core answers every x frame with h[j] = x[j % I] - 3·j (wrapped to act_bits), so
the test can tell element slots, beats, padding and byte order apart; its registers are a dict.
Every run checks that a frame's last beat is padded with zeros.
"""

import math
import random

import pytest
from amaranth.sim import Simulator

from drnn_boards import protocol as P
from drnn_boards.link import HostLink
from drnn_boards.protocol import Command, ErrorCode

IDLE = 40


def wrap(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def fake_h(x, H, bits):
    I = len(x)
    return [wrap(int(x[j % I]) - 3 * j, bits) for j in range(H)]


def run_link(requests, *, I=5, H=7, E=3, A=16, gaps=0, tx_stall=0.0, seed=0, max_cycles=200000,
             sizes=None, x_stall=0.0, h_delay=0):
    """Send each item of ``requests`` (bytes) and collect the response bytes after each.
    ``sizes``: a run-time link (maxima I, H) whose ``sizes`` port reads (I_now, H_now); the
    stand-in core then takes frames of those sizes. ``x_stall``: the probability that the
    stand-in core's x.ready is low in a cycle; ``h_delay``: cycles from a frame's last x beat
    to its first h beat (a core's step).

    Returns (responses, x_frames_seen_by_core, csr_writes).
    """
    dut = HostLink(input_size=I, hidden_size=H, scan=E, act_bits=A, idle_timeout=IDLE,
                   runtime=sizes is not None)
    if sizes is not None:
        I, H = sizes
    rng = random.Random(seed)
    WX, WH = max(1, math.ceil(I / E)), max(1, math.ceil(H / E))
    regs = {a: 0x1000 + a for a in range(40)}
    writes, x_frames, responses, pads = [], [], [], []
    state = {"done": False}

    async def core(ctx):
        beats, h_queue = [], []
        ctx.set(dut.x.ready, 1)
        wait = 0                     # cycles before the queued h frame becomes valid
        if sizes is not None:
            ctx.set(dut.sizes.inputs, I)
            ctx.set(dut.sizes.outputs, H)
        async for _, _, xv, xr, xp, ws, wa, wd, rs, hr, hv in ctx.tick().sample(
                dut.x.valid, dut.x.ready, dut.x.payload, dut.csr.w_stb, dut.csr.addr,
                dut.csr.w_data, dut.csr.r_stb, dut.h.ready, dut.h.valid):
            if hv and hr:
                h_queue.pop(0)
            if xv and xr:
                beats.append(([int(v) for v in xp.data], int(xp.last)))
                if len(beats) == WX:
                    assert [b[1] for b in beats] == [0] * (WX - 1) + [1]
                    flat = [v for b in beats for v in b[0]]
                    x = flat[:I]
                    pads.append(flat[I:])
                    x_frames.append(x)
                    h = fake_h(x, H, A) + [0] * (WH * E - H)
                    for w in range(WH):
                        h_queue.append({"data": h[w * E:(w + 1) * E], "last": int(w == WH - 1)})
                    beats, wait = [], h_delay
            if ws:
                writes.append((int(wa), int(wd)))
                regs[int(wa)] = int(wd)
            if rs:
                ctx.set(dut.csr.r_data, regs[int(wa)])
            if h_queue:
                ctx.set(dut.h.payload, dut.h.payload.shape().const(h_queue[0]))
            wait = max(wait - 1, 0)
            ctx.set(dut.h.valid, int(bool(h_queue) and wait == 0))
            ctx.set(dut.x.ready, int(rng.random() >= x_stall))
            if state["done"]:
                return

    async def host(ctx):
        got = bytearray()

        async def collect(cycles):
            for _ in range(cycles):
                ready = rng.random() >= tx_stall
                ctx.set(dut.tx.ready, ready)
                _, _, tv, tp = await ctx.tick().sample(dut.tx.valid, dut.tx.payload)
                if tv and ready:
                    got.append(tp)

        for req in requests:
            for b in req:
                ctx.set(dut.rx.payload, b)
                ctx.set(dut.rx.valid, 1)
                await ctx.tick()
                ctx.set(dut.rx.valid, 0)
                await collect(gaps)
            # wait until one complete frame arrived (or give up)
            dec = P.FrameDecoder()
            frames, waited = [], 0
            while not frames and waited < max_cycles:
                before = len(got)
                await collect(50)
                waited += 50
                frames = dec.feed(bytes(got[before:]))
            await collect(2 * IDLE)      # nothing more may follow
            responses.append(bytes(got))
            got.clear()
        state["done"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(core, background=True)
    sim.add_testbench(host)
    sim.run()
    # a frame's last beat is padded with zeros past element I, never stale elements
    assert all(v == 0 for pad in pads for v in pad), pads
    return responses, x_frames, writes


def frames_of(data):
    return P.FrameDecoder().feed(data)


def step_payload(x, B=2):
    return b"".join(int(v).to_bytes(B, "little", signed=True) for v in x)


def test_registers_and_steps():
    x1, x2 = [1, -2, 300, -32768, 32767], [0, 5, -6, 7, -8]
    reqs = [
        P.encode_frame(Command.WRITE_REG, bytes([5]) + (0x1234ABCD).to_bytes(4, "little")),
        P.encode_frame(Command.READ_REG, bytes([5])),
        P.encode_frame(Command.READ_REG, bytes([9])),
        P.encode_frame(Command.STEP, step_payload(x1)),
        P.encode_frame(Command.STEP, step_payload(x2)),
    ]
    resp, x_frames, writes = run_link(reqs, gaps=1, tx_stall=0.3)
    assert writes == [(5, 0x1234ABCD)]
    assert [frames_of(r) for r in resp[:3]] == [
        [P.Frame(0x81, b"")],
        [P.Frame(0x82, (0x1234ABCD).to_bytes(4, "little"))],
        [P.Frame(0x82, (0x1000 + 9).to_bytes(4, "little"))],
    ]
    assert x_frames == [x1, x2]
    for r, x in zip(resp[3:], (x1, x2)):
        (f,) = frames_of(r)
        assert f.cmd == 0x83
        got = [int.from_bytes(f.payload[i:i + 2], "little", signed=True)
               for i in range(0, len(f.payload), 2)]
        assert got == fake_h(x, 7, 16)


def test_steps_with_core_stalls():
    """A core that refuses x beats at random and answers each frame late: every beat is
    taken once, in order, and every h beat goes out once (the link waits on h.valid and on
    the taken beat a cycle late, issue #10's seventeenth round)."""
    xs = [[3 * i - 7, i, -i, 100 + i, -100 - i] for i in range(4)]
    reqs = [P.encode_frame(Command.STEP, step_payload(x)) for x in xs]
    for h_delay in (0, 1, 2, 37):
        resp, x_frames, _ = run_link(reqs, E=2, x_stall=0.5, h_delay=h_delay, seed=h_delay)
        assert x_frames == xs
        for r, x in zip(resp, xs):
            (f,) = frames_of(r)
            assert f.cmd == 0x83
            got = [int.from_bytes(f.payload[i:i + 2], "little", signed=True)
                   for i in range(0, len(f.payload), 2)]
            assert got == fake_h(x, 7, 16)


@pytest.mark.parametrize("A", [8, 18])
def test_element_widths(A):
    B = P.element_bytes(A)
    x = [-(1 << (A - 1)), (1 << (A - 1)) - 1, 1, -1, 0]
    resp, x_frames, _ = run_link([P.encode_frame(Command.STEP, step_payload(x, B))], A=A, E=2)
    assert x_frames == [x]
    (f,) = frames_of(resp[0])
    got = [int.from_bytes(f.payload[i:i + B], "little", signed=True)
           for i in range(0, len(f.payload), B)]
    assert got == fake_h(x, 7, A)


@pytest.mark.parametrize("A", [8, 16])
@pytest.mark.parametrize("I,E", [(3, 3), (2, 3), (7, 3)])
def test_frame_buffer_write_before_read(A, I, E):
    """Bytes back to back: a one-beat frame reads its own x, not the previous frame's (the
    frame buffer is read no earlier than a cycle after the write of the frame's last beat);
    a short last beat is padded with zeros, never with the previous frame's elements (issue
    #10's nineteenth round: a link that wrote the beat a cycle later needed a state more)."""
    B = P.element_bytes(A)
    top = (1 << (A - 1)) - 1
    xs = [[(top - 5 * f - 3 * i) * (-1) ** (f + i) for i in range(I)] for f in range(4)]
    reqs = [P.encode_frame(Command.STEP, step_payload(x, B)) for x in xs]
    resp, x_frames, _ = run_link(reqs, I=I, H=4, E=E, A=A)
    assert x_frames == xs
    for r, x in zip(resp, xs):
        (f,) = frames_of(r)
        got = [int.from_bytes(f.payload[i:i + B], "little", signed=True)
               for i in range(0, len(f.payload), B)]
        assert got == fake_h(x, 4, A)


def error_of(data):
    (f,) = frames_of(data)
    assert f.cmd == Command.ERROR
    return f.payload[0], f.payload[1]


def test_framing_errors_then_recovery():
    good = P.encode_frame(Command.STEP, step_payload([1, 2, 3, 4, 5]))
    bad_crc = bytearray(good)
    bad_crc[-1] ^= 0x40
    bad_len = P.encode_frame(Command.STEP, step_payload([1, 2, 3, 4]))
    unknown = P.encode_frame(0x42, b"\x00\x01")
    truncated = good[:7]
    reqs = [bytes(bad_crc), good, bad_len, good, unknown, good, truncated, good,
            b"\x13\x37", good,
            P.encode_frame(Command.READ_REG, bytes([40])), good]     # L = 1: words 0..39
    resp, x_frames, _ = run_link(reqs)
    assert error_of(resp[0]) == (ErrorCode.BAD_CHECKSUM, Command.STEP)
    assert error_of(resp[2]) == (ErrorCode.BAD_LENGTH, Command.STEP)
    assert error_of(resp[4]) == (ErrorCode.UNKNOWN_COMMAND, 0x42)
    assert error_of(resp[6]) == (ErrorCode.TRUNCATED, Command.STEP)
    assert error_of(resp[8]) == (ErrorCode.BAD_SYNC, 0x13)
    assert error_of(resp[10]) == (ErrorCode.BAD_ADDRESS, Command.READ_REG)
    for r in resp[1::2]:
        (f,) = frames_of(r)
        assert f.cmd == 0x83 and len(f.payload) == 14
    # a corrupted or truncated frame never reaches the core
    assert x_frames == [[1, 2, 3, 4, 5]] * 6


def test_crc_matches_reference():
    # CRC-8/ATM check value of "123456789" is 0xF4.
    assert P.crc8(b"123456789") == 0xF4
    frame = P.encode_frame(Command.READ_REG, b"\x07")
    assert P.crc8(frame[1:]) == 0     # appending the CRC leaves a zero residue


def test_decoder_rejects_garbage():
    with pytest.raises(P.ProtocolError):
        P.FrameDecoder().feed(b"\x00")
    f = bytearray(P.encode_frame(0x82, b"\x01\x02\x03\x04"))
    f[5] ^= 1
    with pytest.raises(P.ProtocolError):
        P.FrameDecoder().feed(bytes(f))
    dec = P.FrameDecoder()
    whole = P.encode_frame(0x83, bytes(range(10)))
    assert dec.feed(whole[:6]) == [] and dec.needed() == len(whole) - 6
    assert dec.feed(whole[6:]) == [P.Frame(0x83, bytes(range(10)))]


def test_protocol_numbers_are_the_documented_ones():
    """The bytes of the protocol table (drnn_boards.protocol docstring), written out: a
    renumbered command or error code would still pass the loopback tests above, since the
    gateware and this test would agree on it; a host built from the documentation would not."""
    assert P.SYNC == 0xA5 and P.RESPONSE_BIT == 0x80
    assert {c.name: int(c) for c in Command} == {"WRITE_REG": 0x01, "READ_REG": 0x02,
                                                 "STEP": 0x03, "ERROR": 0xFF}
    assert [Command.WRITE_REG.response, Command.READ_REG.response, Command.STEP.response] == \
        [0x81, 0x82, 0x83]
    assert {e.name: int(e) for e in ErrorCode} == {
        "BAD_SYNC": 1, "UNKNOWN_COMMAND": 2, "BAD_LENGTH": 3, "BAD_CHECKSUM": 4,
        "BAD_ADDRESS": 5, "TRUNCATED": 6, "UART_FRAMING": 7}
    assert P.encode_frame(Command.READ_REG, b"\x07") == bytes([0xA5, 0x02, 0x01, 0x00, 0x07,
                                                              0x52])


def test_crc_catches_every_single_bit_error():
    frame = P.encode_frame(Command.STEP, bytes(range(20)))
    for bit in range(8, 8 * len(frame)):          # every bit after SYNC
        bad = bytearray(frame)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert P.crc8(bytes(bad[1:])) != 0, bit


GOOD = dict(input_size=4, hidden_size=4, scan=2, act_bits=16, idle_timeout=8)


@pytest.mark.parametrize("name,value", [("idle_timeout", 1), ("input_size", 0),
                                        ("input_size", 40000), ("hidden_size", 0),
                                        ("hidden_size", 32768), ("scan", 0), ("act_bits", 1)])
def test_rejects_bad_parameters(name, value):
    with pytest.raises(ValueError, match=rf"^{name} "):
        HostLink(**{**GOOD, name: value})
    HostLink(**GOOD)._MustUse__silence = True       # the good parameters are accepted


@pytest.mark.parametrize("I_now, H_now", [(5, 7), (1, 1), (4, 3), (8, 11)])
def test_runtime_sizes(I_now, H_now):
    """A run-time link (maxima I = 8, H = 11, E = 3) takes and answers frames of the sizes its
    ``sizes`` port reads: the payload length checked against I_now, the x frame's beats and
    ``last`` from it, the response H_now elements; a frame of the maxima's size is refused."""
    x = [(-1) ** j * (100 * j + 7) for j in range(I_now)]
    reqs = [P.encode_frame(Command.STEP, step_payload(x)),
            P.encode_frame(Command.STEP, step_payload(list(range(8)))),
            P.encode_frame(Command.STEP, step_payload(x))]
    responses, x_frames, _ = run_link(reqs, I=8, H=11, sizes=(I_now, H_now))
    ok = frames_of(responses[0])
    assert [f.cmd for f in ok] == [Command.STEP.response]
    assert ok[0].payload == step_payload(fake_h(x, H_now, 16))
    if I_now != 8:
        err = frames_of(responses[1])
        assert [(f.cmd, f.payload[0]) for f in err] == [(Command.ERROR, ErrorCode.BAD_LENGTH)]
    assert frames_of(responses[2])[0].payload == ok[0].payload
    assert x_frames[0] == x and x_frames[-1] == x


@pytest.mark.parametrize("I_now, H_now", [(0, 7), (9, 7), (5, 0), (5, 12)])
def test_runtime_sizes_beyond_the_buffers_refuse_steps(I_now, H_now):
    """Sizes of no consistent model (0, or beyond the maxima the buffers hold): every STEP is
    answered BAD_LENGTH, whatever its length, and nothing reaches the core."""
    reqs = [P.encode_frame(Command.STEP, step_payload(list(range(n)))) for n in (5, 8, 9)]
    reqs.append(P.encode_frame(Command.STEP, b""))
    responses, x_frames, _ = run_link(reqs, I=8, H=11, sizes=(I_now, H_now))
    for r in responses:
        assert [(f.cmd, f.payload[0]) for f in frames_of(r)] == \
            [(Command.ERROR, ErrorCode.BAD_LENGTH)]
    assert x_frames == []
