"""UART (8 data bits, no parity, 1 stop bit) transmitter and receiver.

``divisor`` is the number of clock cycles per bit (clock frequency / baud rate). It is a
parameter so that simulation can use a handful of clocks per bit while hardware uses the real
baud rate (:class:`~drnn_boards.ulx3s.ULX3STop` derives it from the clock and baud rate).
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTTransmitter", "UARTReceiver", "MIN_DIVISOR"]

#: Fewest clock cycles per bit: the receiver confirms the start bit at divisor/2 and samples
#: each data bit a whole bit later; with fewer clocks the two-flop input synchroniser's delay
#: is a large part of the bit and leaves no margin for a baud rate mismatch.
MIN_DIVISOR = 4


def _check_divisor(component, divisor):
    if isinstance(divisor, bool) or not isinstance(divisor, int) or divisor < MIN_DIVISOR:
        component._MustUse__silence = True      # never elaborated: do not warn about it
        raise ValueError(f"divisor must be an integer ≥ {MIN_DIVISOR} clock cycles per bit, "
                         f"got {divisor!r}")


class UARTTransmitter(wiring.Component):
    """UART transmitter, 8N1: sends each byte of the ``i`` stream on ``tx``, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate, ≥ :data:`MIN_DIVISOR`).

    Ports
    -----
    i : In(stream.Signature(8))
        Bytes to send; ``ready`` while the transmitter is idle, a byte is taken when
        ``valid & ready`` and occupies the line for 10 bits (10 · divisor clock cycles).
    tx : Out(1)
        The serial line, idle high (1 after reset).

    Raises
    ------
    ValueError
        ``divisor`` not an integer ≥ :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor: int):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        bits_left = Signal(range(11))    # bit periods still to send: start + 8 data + stop
        shreg = Signal(9)                # data bits then the stop bit, shifted out LSB first

        with m.If(bits_left == 0):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += [
                    self.tx.eq(0),                       # start bit
                    shreg.eq(Cat(self.i.payload, 1)),
                    bits_left.eq(10),
                    timer.eq(self.divisor - 1),
                ]
        with m.Elif(timer == 0):
            m.d.sync += [timer.eq(self.divisor - 1), bits_left.eq(bits_left - 1)]
            with m.If(bits_left != 1):
                m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class UARTReceiver(wiring.Component):
    """UART receiver, 8N1: receives bytes from ``rx`` into the ``o`` stream.

    The line goes through a two-flop synchroniser; a start bit is confirmed in its middle and
    every following bit is sampled ``divisor`` clock cycles later.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (clock frequency / baud rate, ≥ :data:`MIN_DIVISOR`).

    Ports
    -----
    rx : In(1)
        The serial line (asynchronous; idle high).
    o : Out(stream.Signature(8))
        Received bytes. The stream cannot stall the line: ``o.valid`` is a one-cycle pulse
        in the middle of the stop bit.
    overrun : Out(1)
        One-cycle pulse: the byte on ``o`` was not taken (``o.ready`` low) and is lost.
    framing_error : Out(1)
        One-cycle pulse for a character whose stop bit was 0 (the byte is discarded); the
        receiver then waits for the line to return high.

    Raises
    ------
    ValueError
        ``divisor`` not an integer ≥ :data:`MIN_DIVISOR`.
    """

    def __init__(self, divisor: int):
        _check_divisor(self, divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(self.divisor))
        bit = Signal(range(9))
        shreg = Signal(8)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):              # confirm the start bit in its middle
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"         # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                        m.next = "DATA"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(self.divisor - 1), shreg.eq(Cat(shreg[1:], rx)),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.comb += [self.o.valid.eq(1), self.overrun.eq(~self.o.ready)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        m.d.comb += self.o.payload.eq(shreg)
        return m
