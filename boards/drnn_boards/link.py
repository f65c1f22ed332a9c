"""Gateware of the framed host protocol (:mod:`drnn_boards.protocol`): bytes in, core ports out.

:class:`HostLink` sits between a byte transport (the UART, or any byte stream) and the core's
``x``/``h`` streams and ``csr`` bus. It parses one request at a time, checks its length and
CRC, executes it, and sends one response frame, as the protocol module describes. Its core-side
ports are the core's contract (:mod:`drnn_hw.contract`): the CSR bus and the frame streams.

A STEP payload is first collected in a frame buffer (one memory word per x beat of E elements)
and only streamed into the core once its CRC checked out. The h frame is streamed from the core
straight into the response, element by element.
"""

import math

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from drnn_hw.contract import ADDR_BITS, LAYER_BLOCK, LAYER_STRIDE, CSRSignature, frame_signature
from drnn_hw.layer_map import MAX_LAYERS

from . import protocol as P
from .protocol import Command, ErrorCode

__all__ = ["HostLink", "FrameSizesSignature"]

#: The frame sizes of a run-time core, in elements (the core's ``status.inputs`` and
#: ``status.outputs``): I of layer 0 and H_out.
FrameSizesSignature = wiring.Signature({"inputs": Out(16), "outputs": Out(16)})


class HostLink(wiring.Component):
    """The protocol engine: one request frame in, one response frame out.

    Parameters
    ----------
    input_size, hidden_size : int
        I and H of the core (≥ 1); a STEP payload is ``I·B`` bytes and its response ``H·B``
        bytes, ``B = ceil(act_bits / 8)``, each at most 65535. With ``runtime`` the largest I
        and H_out (the run-time core's maxima), which size the frame buffer and counters.
    scan : int
        E, elements per beat of the core's x and h streams (≥ 1).
    act_bits : int
        Width of an activation code in bits (≥ 2).
    idle_timeout : int
        Clock cycles of a quiet line that end a truncated frame or a drain (≥ 2).
    layers : int
        L, the core's layers (1 to 28): register addresses from ``32 + 8·L`` on, past the
        core's last register block, are answered with BAD_ADDRESS.
    runtime : bool
        The frame sizes are the ``sizes`` port's (a ``--weights runtime`` core's loaded model),
        read when a request arrives, not constants. A STEP while they are 0 or beyond
        ``input_size``/``hidden_size`` (no consistent model loaded) is answered BAD_LENGTH.

    Ports
    -----
    rx : In(stream.Signature(8))
        Bytes from the host.
    rx_error : In(1)
        A UART framing error strobe (answered with ``UART_FRAMING``).
    tx : Out(stream.Signature(8))
        Bytes to the host.
    x : Out(frame_signature(act_bits, scan))
        x frames to the core, E signed ``act_bits`` codes per beat.
    h : In(frame_signature(act_bits, scan))
        h frames from the core.
    csr : Out(CSRSignature)
        The core's register bus (this link is its master).
    sizes : In(FrameSizesSignature)
        Only with ``runtime``: I and H_out of the model the core runs (its ``status.inputs``
        and ``status.outputs``).

    Raises
    ------
    ValueError
        Naming the parameter out of range.
    """

    def __init__(self, *, input_size: int, hidden_size: int, scan: int, act_bits: int,
                 idle_timeout: int, layers: int = 1, runtime: bool = False):
        B = P.element_bytes(act_bits) if act_bits >= 1 else 1
        checks = [("act_bits", act_bits, act_bits >= 2, "must be ≥ 2"),
                  ("scan", scan, scan >= 1, "must be ≥ 1"),
                  ("input_size", input_size, 1 <= input_size and input_size * B <= 0xFFFF,
                   f"must be ≥ 1 with I·B ≤ 65535 bytes (B = {B})"),
                  ("hidden_size", hidden_size, 1 <= hidden_size and hidden_size * B <= 0xFFFF,
                   f"must be ≥ 1 with H·B ≤ 65535 bytes (B = {B})"),
                  ("idle_timeout", idle_timeout, idle_timeout >= 2, "must be ≥ 2 clock cycles"),
                  ("layers", layers, 1 <= layers <= MAX_LAYERS, f"must be 1 to {MAX_LAYERS}")]
        for name, value, ok, rule in checks:
            if not ok:
                self._MustUse__silence = True   # never elaborated: do not warn about it
                raise ValueError(f"{name} {rule}, got {value}")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.scan = scan
        self.act_bits = act_bits
        self.idle_timeout = idle_timeout
        self.layers = layers
        self.runtime = runtime
        self.element_bytes = B
        #: The first word address past the core's map (its last layer's register block).
        self.address_limit = LAYER_BLOCK + LAYER_STRIDE * layers
        self.x_beats = math.ceil(input_size / scan)
        fs = frame_signature(act_bits, scan)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "rx_error": In(1),
            "tx": Out(stream.Signature(8)),
            "x": Out(fs),
            "h": In(fs),
            "csr": Out(CSRSignature),
            **({"sizes": In(FrameSizesSignature)} if runtime else {}),
        })

    def elaborate(self, platform):
        m = Module()
        I, H, E, A = self.input_size, self.hidden_size, self.scan, self.act_bits
        B = self.element_bytes
        if self.runtime:
            # The loaded model's sizes; a STEP is refused unless they fit the buffers.
            I_now, H_now = self.sizes.inputs, self.sizes.outputs
            sizes_ok = Signal()
            m.d.comb += sizes_ok.eq((I_now >= 1) & (I_now <= I) & (H_now >= 1) & (H_now <= H))
            step_len = Mux(sizes_ok, I_now * B, 0)
        else:
            I_now, H_now = Const(I, 16), Const(H, 16)
            step_len = I * B

        # -- frame buffer for x_t: one word per beat, one memory per element of a beat ----------
        # Each element's memory has its own copy of the write enable (``xbuf_we{e}_dup``, set
        # with ``put_write``): one enable for the whole beat reached E·act_bits flip-flops (a
        # one-beat buffer is registers), 13.6 ns of routing on the ULX3S at 70 MHz (#10).
        xbuf_w, xbuf_r, xbuf_we = [], [], []
        for e in range(E):
            mem = memory.Memory(shape=A, depth=self.x_beats, init=[])
            m.submodules[f"xbuf{e}"] = mem
            xbuf_w.append(mem.write_port())
            xbuf_r.append(mem.read_port())
            xbuf_we.append(Signal(name=f"xbuf_we{e}_dup"))
        m.d.sync += [we.eq(0) for we in xbuf_we]

        cmd = Signal(8)
        length = Signal(16)
        left = Signal(16)                  # payload bytes still to come (a compare to 1, not
                                           # a subtract and compare, ends the payload)
        # The frame check, one processor per direction, from the protocol's algorithm: rx_crc
        # restarts at a SYNC and takes every byte received after it (so in CHECK it holds the
        # CRC of CMD, LEN and PAYLOAD); tx_crc restarts with each response and takes every
        # byte sent after its SYNC.
        m.submodules.rx_crc = rx_crc = P.CRC.create()
        m.submodules.tx_crc = tx_crc = P.CRC.create()
        arg = Signal(40)                   # register request: ADDR, then DATA (little endian)
        err_code = Signal(8)
        idle = Signal(range(self.idle_timeout + 1))
        # ``idle == idle_timeout``, a register (worked out from the counter's next value
        # below): the compare sat in front of the state register (the link's slowest path
        # group of the ULX3S build at 90 MHz, 11.14 ns, issue #10's seventeenth round; the
        # same holds for the other registered flags of this round: len_lo_*, left_one,
        # bad_addr, is_step, resp_last, h_valid_q and x_taken).
        quiet = Signal()

        # input element assembly
        elem_byte = Signal(range(max(B, 2)))
        elem_lo = Signal(max(8 * (B - 1), 1))    # the bytes of the element before its last one
        beat_elem = Signal(range(max(E, 2)))     # element slot of the beat being assembled
        elem = Signal(range(I + 1))              # element of the frame
        beat = Signal(range(self.x_beats + 1))
        # The x frame's last beat: a constant, or (run-time sizes) the beats the payload filled.
        x_last = Signal(range(self.x_beats)) if self.runtime else Const(self.x_beats - 1)
        # The beat's read and the x stream's payload, in every state (the payload counts only
        # while ``x.valid``, in X_SEND, after X_READ's read of the same beat): a payload held
        # at 0 outside X_SEND was a synchronous reset of the board's beat register (its
        # E·act_bits flip-flops) decoded from the state, 11.4 ns at 80 MHz (issue #10).
        m.d.comb += [*(port.addr.eq(beat) for port in xbuf_r),
                     self.x.payload.data.eq(Cat(port.data for port in xbuf_r)),
                     self.x.payload.last.eq(beat == x_last)]

        hold = Signal(E * A)                     # the beat being assembled
        hold_next = Signal(E * A)
        # An element is put into the beat a cycle after its last byte arrives, from registers
        # (``put``): the byte's accept decision (FIFO level, state, counters) then drives a
        # few flip-flops, not the enables of the whole beat and frame buffer (the ULX3S
        # build's 13.6 ns path into 491 registers). Bytes come one per cycle at most, and the
        # frame buffer is read no earlier than two cycles after the last payload byte.
        put = Signal()                           # an element to put into the beat
        put_elem = Signal(A)
        # The element's slot, one-hot: each of the beat's E words then takes its enable from
        # one flip-flop, where a binary slot fanned out to the whole beat's E·act_bits
        # registers and the buffer's write data (the ULX3S build's 12.34 ns path at 80 MHz).
        put_at = Signal(E)
        put_write = Signal()                     # ... and it ends the beat: write the buffer
        put_beat = Signal(range(self.x_beats + 1))
        clear_hold = Signal()                    # a request's length arrived: empty the beat
        m.d.sync += [put.eq(0), clear_hold.eq(0)]

        # response
        resp_cmd = Signal(8)
        resp_len = Signal(16)
        resp_data = Signal(32)
        resp_count = Signal(16)
        h_beat_elem = Signal(range(max(E, 2)))
        h_elem = Signal(range(H + 1))
        h_len = Signal(16)                       # response payload bytes of a STEP: H_now·B
        h_byte = Signal(range(max(B, 2)))
        tx_byte = Signal(8)                      # the h byte being sent (TX_H_LOAD, TX_H)
        h_done = Signal()                        # the beat just sent was the frame's last
        # The core-side strobes straight from flip-flops, set on entering the state that
        # drives them (not a decode of the state register): h.ready enables the core's output
        # beat register and x.valid its input FIFO's write, each E·act_bits flip-flops.
        h_ready = Signal()                       # in TX_H_NEXT
        x_valid = Signal()                       # in X_SEND
        m.d.comb += [self.h.ready.eq(h_ready), self.x.valid.eq(x_valid)]
        m.d.sync += h_ready.eq(0)
        h_valid_q = Signal()                     # h.valid a cycle ago (TX_H_LOAD)
        m.d.sync += h_valid_q.eq(self.h.valid)
        x_taken = Signal()                       # the x beat was taken in the cycle before
        m.d.sync += x_taken.eq(0)

        rx_byte = self.rx.payload
        rx_take = Signal()                       # a byte is consumed this cycle
        m.d.comb += rx_take.eq(self.rx.valid & self.rx.ready)
        m.d.comb += [rx_crc.data.eq(rx_byte), tx_crc.data.eq(self.tx.payload)]

        # Idle counter: cycles since the last received byte, saturating at the timeout.
        with m.If(rx_take | self.rx_error):
            m.d.sync += [idle.eq(0), quiet.eq(0)]
        with m.Elif(~quiet):
            m.d.sync += [idle.eq(idle + 1), quiet.eq(idle == self.idle_timeout - 1)]

        # Sending a byte: the response states drive tx.payload and move on when tx.ready.

        expected_len = Signal(16)
        known = Signal()
        with m.Switch(cmd):
            with m.Case(Command.WRITE_REG):
                m.d.comb += [expected_len.eq(5), known.eq(1)]
            with m.Case(Command.READ_REG):
                m.d.comb += [expected_len.eq(1), known.eq(1)]
            with m.Case(Command.STEP):
                m.d.comb += [expected_len.eq(step_len), known.eq(1)]

        # The request's checks, registered a byte ahead of the state that branches on them:
        # the length's low byte against expected_len's (LEN_LO), whether one payload byte is
        # left (left == 1), whether the register address is past the map (from the payload
        # byte that completes it), and the command's kind (CMD).
        len_lo_match = Signal()
        len_lo_zero = Signal()
        left_one = Signal()
        bad_addr = Signal()
        is_step = Signal()
        is_read = Signal()

        # The element completed by the current byte (little endian, low act_bits kept).
        new_elem = Signal(A)
        m.d.comb += new_elem.eq(Cat(elem_lo[:8 * (B - 1)], rx_byte)[:A] if B > 1 else rx_byte[:A])
        for e in range(E):
            m.d.comb += hold_next.word_select(e, A).eq(
                Mux(put_at[e], put_elem, hold.word_select(e, A)))
        for e, port in enumerate(xbuf_w):        # xbuf_we[e] equals put & put_write
            m.d.comb += [port.en.eq(xbuf_we[e]), port.addr.eq(put_beat),
                         port.data.eq(hold_next.word_select(e, A))]
        with m.If(put):
            with m.If(put_write):
                m.d.sync += hold.eq(0)
            with m.Else():
                m.d.sync += hold.eq(hold_next)
        with m.If(clear_hold):                   # (never in a cycle with a put)
            m.d.sync += hold.eq(0)

        # Output element: sign-extended to 8·B bits, byte h_byte of it.
        # (Case statements rather than variable shifts: explicit muxes, no width warnings.)
        h_value = Signal(signed(8 * B))
        with m.Switch(h_beat_elem):
            for e in range(E):
                with m.Case(e):
                    m.d.comb += h_value.eq(self.h.payload.data[e])
        # The element is registered before its byte is picked (TX_H_LOAD, then TX_H_BYTE):
        # the core's beat registers sit by the core, and the element mux and the byte mux
        # behind that crossing were the demo build's critical path at 70 MHz (13.12 ns, 11.23
        # of it routing).
        h_value_q = Signal(signed(8 * B))
        h_out_byte = Signal(8)
        with m.Switch(h_byte):
            for k in range(B):
                with m.Case(k):
                    m.d.comb += h_out_byte.eq(h_value_q.as_unsigned()[8 * k:8 * k + 8])

        # What the response states branch on, worked out when the response starts (from
        # constants) rather than compared in the state: the TX states stay a few LUTs deep.
        resp_step = Signal()
        resp_empty = Signal()
        resp_last = Signal()                     # resp_count == resp_len - 1 (TX_DATA)

        def start_response(code_cmd, length_, next_state="TX_SYNC"):
            m.d.sync += [resp_cmd.eq(code_cmd), resp_len.eq(length_), resp_count.eq(0),
                         resp_step.eq(int(code_cmd) == int(Command.STEP.response)),
                         resp_empty.eq(length_ == 0), resp_last.eq(length_ == 1)]
            m.d.comb += tx_crc.start.eq(1)
            m.next = next_state

        def drain(code):
            m.d.sync += err_code.eq(code)
            m.next = "DRAIN"

        # READ_REG's single payload byte ends up at the top of the shift register.
        reg_addr = Signal(8)
        m.d.comb += reg_addr.eq(Mux(is_read, arg[32:40], arg[:8]))
        # The register bus is driven from flip-flops, set as the request is accepted, so the
        # core's address decoding and whatever a write sets start from registers.
        bus_addr = Signal(ADDR_BITS)
        bus_w_data = Signal(32)
        bus_w_stb = Signal()
        bus_r_stb = Signal()
        m.d.comb += [self.csr.addr.eq(bus_addr), self.csr.w_data.eq(bus_w_data),
                     self.csr.w_stb.eq(bus_w_stb), self.csr.r_stb.eq(bus_r_stb)]
        m.d.sync += [bus_w_stb.eq(0), bus_r_stb.eq(0)]

        with m.FSM():
            with m.State("HUNT"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx_error):
                    m.d.sync += cmd.eq(0)
                    drain(ErrorCode.UART_FRAMING)
                with m.Elif(self.rx.valid):
                    with m.If(rx_byte == P.SYNC):
                        m.d.comb += rx_crc.start.eq(1)
                        m.next = "CMD"
                    with m.Else():
                        m.d.sync += cmd.eq(rx_byte)
                        drain(ErrorCode.BAD_SYNC)

            def receive(then):
                """Common handling of a header/payload byte: framing errors and timeouts."""
                m.d.comb += self.rx.ready.eq(1)
                with m.If(self.rx_error):
                    drain(ErrorCode.UART_FRAMING)
                with m.Elif(self.rx.valid):
                    m.d.comb += rx_crc.valid.eq(1)
                    then()
                with m.Elif(quiet):
                    m.d.sync += err_code.eq(ErrorCode.TRUNCATED)
                    m.next = "SEND_ERROR"

            with m.State("CMD"):
                def got_cmd():
                    m.d.sync += [cmd.eq(rx_byte), is_step.eq(rx_byte == Command.STEP),
                                 is_read.eq(rx_byte == Command.READ_REG)]
                    m.next = "LEN_LO"
                receive(got_cmd)

            with m.State("LEN_LO"):
                def got_len_lo():
                    m.d.sync += [length[:8].eq(rx_byte),
                                 len_lo_match.eq(rx_byte == expected_len[:8]),
                                 len_lo_zero.eq(rx_byte == 0)]
                    m.next = "LEN_HI"
                receive(got_len_lo)

            with m.State("LEN_HI"):
                def got_len_hi():
                    full = Cat(length[:8], rx_byte)
                    m.d.sync += [length[8:].eq(rx_byte), left.eq(full), elem_byte.eq(0),
                                 beat_elem.eq(0), elem.eq(0), beat.eq(0), clear_hold.eq(1),
                                 left_one.eq(full == 1)]
                    # full != expected_len, or full == 0, from the low byte's registered tests
                    len_ok = len_lo_match & (rx_byte == expected_len[8:])
                    len_zero = len_lo_zero & (rx_byte == 0)
                    with m.If(~known):
                        drain(ErrorCode.UNKNOWN_COMMAND)
                    with m.Elif(~len_ok | len_zero):
                        drain(ErrorCode.BAD_LENGTH)
                    with m.Else():
                        m.next = "PAYLOAD"     # every command has a non-empty payload
                receive(got_len_hi)

            with m.State("PAYLOAD"):
                def got_payload():
                    m.d.sync += [left.eq(left - 1), arg.eq(Cat(arg[8:], rx_byte)),
                                 left_one.eq(left == 2),
                                 # reg_addr (above) of the shifted ``arg``
                                 bad_addr.eq(Mux(is_read, rx_byte, arg[8:16]) >=
                                             self.address_limit)]
                    with m.If(is_step):
                        with m.If(elem_byte == B - 1):
                            m.d.sync += [elem_byte.eq(0), elem.eq(elem + 1), put.eq(1),
                                         put_elem.eq(new_elem), put_at.eq(1 << beat_elem),
                                         put_beat.eq(beat), put_write.eq(0)]
                            with m.If((beat_elem == E - 1) | (elem == I_now - 1)):
                                m.d.sync += [beat_elem.eq(0), beat.eq(beat + 1),
                                             put_write.eq(1)]
                                m.d.sync += [we.eq(1) for we in xbuf_we]
                            with m.Else():
                                m.d.sync += beat_elem.eq(beat_elem + 1)
                        with m.Else():
                            m.d.sync += elem_byte.eq(elem_byte + 1)
                            if B > 1:
                                m.d.sync += elem_lo.word_select(elem_byte, 8).eq(rx_byte)
                    with m.If(left_one):
                        m.next = "CHECK"
                receive(got_payload)

            with m.State("CHECK"):
                def got_crc():
                    with m.If(rx_byte != rx_crc.crc):
                        m.d.sync += err_code.eq(ErrorCode.BAD_CHECKSUM)
                        m.next = "SEND_ERROR"
                    with m.Elif(is_step):
                        m.d.sync += beat.eq(0)
                        if self.runtime:
                            m.d.sync += [x_last.eq(beat - 1), h_len.eq(H_now * B)]
                        m.next = "X_READ"
                    with m.Elif(bad_addr):                  # past the last register
                        m.d.sync += err_code.eq(ErrorCode.BAD_ADDRESS)
                        m.next = "SEND_ERROR"
                    with m.Elif(cmd == Command.WRITE_REG):
                        m.d.sync += [bus_addr.eq(arg[:ADDR_BITS]), bus_w_data.eq(arg[8:40]),
                                     bus_w_stb.eq(1)]
                        m.next = "REG_WRITE"
                    with m.Else():
                        m.d.sync += [bus_addr.eq(reg_addr[:ADDR_BITS]), bus_r_stb.eq(1)]
                        m.next = "REG_READ"
                receive(got_crc)

            with m.State("DRAIN"):
                m.d.comb += self.rx.ready.eq(1)
                with m.If(quiet & ~self.rx.valid):
                    m.next = "SEND_ERROR"

            with m.State("SEND_ERROR"):
                m.d.sync += resp_data.eq(Cat(err_code, cmd))
                start_response(Command.ERROR, 2)

            # -- register access -----------------------------------------------------------
            with m.State("REG_WRITE"):              # the write strobe is out this cycle
                start_response(Command.WRITE_REG.response, 0)

            with m.State("REG_READ"):               # the read strobe is out this cycle
                m.next = "REG_READ_DATA"
            with m.State("REG_READ_DATA"):
                m.d.sync += resp_data.eq(self.csr.r_data)
                start_response(Command.READ_REG.response, 4)

            # -- a timestep ----------------------------------------------------------------
            with m.State("X_READ"):
                m.d.sync += x_valid.eq(1)
                m.next = "X_SEND"
            # X_SEND moves on the cycle after the core takes the beat (``x_taken``): the
            # core's FIFO level is across the die from this state register, so x.ready only
            # clears x_valid and sets x_taken, two flip-flops. A cycle more per beat.
            with m.State("X_SEND"):
                with m.If(x_taken):
                    m.d.sync += beat.eq(beat + 1)
                    with m.If(beat == x_last):
                        m.d.sync += [h_beat_elem.eq(0), h_elem.eq(0), h_byte.eq(0)]
                        start_response(Command.STEP.response,
                                       h_len if self.runtime else H * B)
                    with m.Else():
                        m.next = "X_READ"
                with m.Elif(self.x.ready):               # x_valid is set until the beat goes
                    m.d.sync += [x_valid.eq(0), x_taken.eq(1)]

            # -- response ------------------------------------------------------------------
            with m.State("TX_SYNC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(P.SYNC)]
                with m.If(self.tx.ready):
                    m.next = "TX_CMD"
            for state, value, nxt in (("TX_CMD", resp_cmd, "TX_LEN_LO"),
                                      ("TX_LEN_LO", resp_len[:8], "TX_LEN_HI")):
                with m.State(state):
                    m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(value)]
                    with m.If(self.tx.ready):
                        m.d.comb += tx_crc.valid.eq(1)
                        m.next = nxt
            with m.State("TX_LEN_HI"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(resp_len[8:])]
                with m.If(self.tx.ready):
                    m.d.comb += tx_crc.valid.eq(1)
                    with m.If(resp_empty):
                        m.next = "TX_CRC"
                    with m.Elif(resp_step):
                        m.next = "TX_H_LOAD"
                    with m.Else():
                        m.next = "TX_DATA"
            with m.State("TX_DATA"):                # register data or error code, LE bytes
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(resp_data[:8])]
                with m.If(self.tx.ready):
                    m.d.comb += tx_crc.valid.eq(1)
                    m.d.sync += [resp_data.eq(resp_data >> 8), resp_count.eq(resp_count + 1),
                                 resp_last.eq(resp_count + 2 == resp_len)]
                    with m.If(resp_last):
                        m.next = "TX_CRC"
            # The h frame, from the core's output beat: each byte's element is registered
            # (TX_H_LOAD), the byte taken from it into ``tx_byte`` (TX_H_BYTE) before it is
            # sent, and the beat is released (``h.ready``) in a state of its own once its
            # last byte has gone (TX_H_NEXT): neither the core's beat multiplexer nor the byte
            # FIFO's ready is then in front of the CRC or the core's output registers (the
            # ULX3S build's 12.7 and 12.8 ns paths). Four cycles more per byte and one per
            # beat, against a UART byte's hundreds.
            # TX_H_LOAD waits on h.valid of the cycle before (``h_valid_q``): the core's output
            # register is across the die from this state register. The same holds now: only
            # this link's h.ready takes a beat, and a core holds its beat until then (after
            # TX_H_NEXT's transfer the frame has a next beat, or TX_H_LOAD is not entered).
            with m.State("TX_H_LOAD"):
                m.d.sync += h_value_q.eq(h_value)
                with m.If(h_valid_q):
                    m.next = "TX_H_BYTE"
            with m.State("TX_H_BYTE"):
                m.d.sync += tx_byte.eq(h_out_byte)
                m.next = "TX_H"
            with m.State("TX_H"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tx_byte)]
                with m.If(self.tx.ready):
                    m.d.comb += tx_crc.valid.eq(1)
                    m.next = "TX_H_LOAD"
                    with m.If(h_byte == B - 1):
                        m.d.sync += [h_byte.eq(0), h_elem.eq(h_elem + 1)]
                        with m.If((h_beat_elem == E - 1) | (h_elem == H_now - 1)):
                            m.d.sync += [h_beat_elem.eq(0),    # the whole beat was sent
                                         h_done.eq(h_elem == H_now - 1), h_ready.eq(1)]
                            m.next = "TX_H_NEXT"
                        with m.Else():
                            m.d.sync += h_beat_elem.eq(h_beat_elem + 1)
                    with m.Else():
                        m.d.sync += h_byte.eq(h_byte + 1)
            with m.State("TX_H_NEXT"):              # the core's beat is still valid: h_ready
                with m.If(h_done):
                    m.next = "TX_CRC"
                with m.Else():
                    m.next = "TX_H_LOAD"
            with m.State("TX_CRC"):
                m.d.comb += [self.tx.valid.eq(1), self.tx.payload.eq(tx_crc.crc)]
                with m.If(self.tx.ready):
                    m.next = "HUNT"
        return m
