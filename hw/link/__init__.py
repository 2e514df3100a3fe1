"""The host link: a UART (:mod:`.uart`) and the framed command link (:mod:`.frames`) between it and
the accelerator's word streams. The frame format and its CRC live in :mod:`.protocol`, shared by
the RTL and the host transport (``sim/link_transport.py``)."""
