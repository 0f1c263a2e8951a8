"""Example ultra_ext plugin: ``GatedConv`` and ``ChannelShuffle`` for model YAMLs (see ``blocks.py``)."""
