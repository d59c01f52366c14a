"""course_lib: the working implementations behind the course's notebooks.

One module per concern, read bottom-up:

====================  ==========================================================================
``checks``            argument checks shared by every module (TypeError / ValueError, named)
``data``              MNIST / Fashion-MNIST from ``datasets/``, checksum-verified, in memory
``models``            LeNet-300-100, LeNet-5, the distillation teacher and students, a small CNN
``train``             seeding, device choice, ``fit`` / ``evaluate`` / ``fine_tune``
``zoo``               pretrained baselines (safetensors + checksums) and the command that rebuilds them
``encoding``          number formats, sparse encodings (bitmask, CSR, relative index), Huffman coding
``measure``           parameters, bytes, MACs, peak activations, measured latency, ``report``
``hardware``          device profiles, fits-on-device verdicts, roofline latency, energy estimates
``lowrank``           truncated SVD, Tucker-2 / CP / spatial conv factorisations, rank choice, LoRA
``deep_compression``  Deep Compression: weight sharing keeping zeros, codebook fine-tuning, per-layer bits
``deploy``            an int8 model as plain arrays, an integer-only NumPy forward, a C header, profiles
``planner``           the compression planner: measured combinations filtered for a device and a floor
``plots``             figures shared by the notebooks
``widgets``           the ipywidgets panels
``exercises``         checkers for learners' code and the student-notebook builder
====================  ==========================================================================
"""

__version__ = "0.1.0"
