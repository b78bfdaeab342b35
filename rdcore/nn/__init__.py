"""The network: frozen teacher, one-class bottleneck, student decoder, maps and loss."""
