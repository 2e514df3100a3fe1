"""The network compiler: integer network (``quant.ir``) -> hardware ops -> memory plan -> programs.

Read in this order (each file is one step of ``spiketrack compile``):

* :mod:`.passes`   — the pass framework: ``pass(graph) -> (graph, changed)``;
* :mod:`.hwops`    — one class per hardware operation (fusion pattern, golden execution through
  ``quant.golden``, cycle model, parameter packing), in one registry;
* :mod:`.fuse`     — the fusion passes that turn IR layers into hardware-op nodes;
* :mod:`.memplan`  — every buffer of a board's block RAM, sized in bits and EBRs;
* :mod:`.schedule` — the template and search programs, predicted cycles, the lane sweep;
* :mod:`.build`    — the build steps and the versioned, hash-checked compiled artifact.
"""
