"""``drnn bench``, split by job: :mod:`.metrics` (the figures and their definitions, pure
functions), :mod:`.torch_ref` (the PyTorch reference: accuracy and CPU latency),
:mod:`.peer_model` (EdgeDRNN's published schedule), :mod:`.run` (orchestration over thresholds
and engines) and :mod:`.plots` (PNG figures). The build-report reader sits beside its writer in
:mod:`drnn_boards.ulx3s_report`.
"""
