"""Speed levers for inference and training, each switchable on its own and measured one by one.

* :mod:`facesr.speed.inference`: channels_last, bf16 autocast, ``torch.compile``, CUDA graphs,
  batch size; ONNX Runtime and int8 dynamic quantisation on the CPU (:class:`facesr.restoration.engine.OrtRestorer`, shared with ``facesr restore``).
* :mod:`facesr.speed.training`: the full JDSR training step (all loss terms, critic with gradient
  penalty) timed per lever, with GPU busy time and peak memory.

docs/speed.md says which levers pay, with the commands that measured them.
"""
