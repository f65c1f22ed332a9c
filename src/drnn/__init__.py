"""The ``drnn`` application: the command line, its commands, the simulation engines, the
benchmark and the demo. It sits above every other package of the project:

    drnn  ──►  drnn_boards ──► drnn_sim ──► drnn_hw
      └──────► drnn_train ───────────────────┘

``drnn_hw`` (numerics, bundle, golden and cycle models, gateware, generator) imports none of the
others; the contract is written in ``pyproject.toml`` (``[tool.importlinter]``) and checked by
``make test``.
"""
