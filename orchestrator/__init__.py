"""Strategy orchestrator core: registry, strategies, market data, risk, execution.

Nothing in this package (except the ``client`` and ``cli`` entry points) imports
WebSocket or NNG libraries; the edge lives in :mod:`gateways`.
"""
