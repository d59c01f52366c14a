"""course_lib: the working implementations behind the course's notebooks.

One module per concern, in layers (the foundation, the techniques, the zoo, the experiments, the
panels; a module imports only from its own layer or those before it), read top to bottom:

====================  ==========================================================================
``checks``            argument checks shared by every module (TypeError / ValueError, named)
``data``              MNIST / Fashion-MNIST from ``datasets/``, checksum-verified, in memory
``models``            LeNet-300-100, LeNet-5, the distillation teacher and students, a small CNN
``train``             seeding, device choice, ``fit`` / ``evaluate`` / ``fine_tune``
``selection``         per-layer choices: one parser, sensitivity scans, a drop, a knapsack
``encoding``          number formats, sparse encodings (bitmask, CSR, relative index), Huffman coding
``measure``           parameters, bytes, MACs, peak activations, measured latency, ``report``
``hardware``          device profiles, fits-on-device verdicts, roofline latency, energy estimates
``plots``             figures shared by the notebooks
``lowrank``           truncated SVD, Tucker-2 / CP / spatial conv factorisations, rank choice, LoRA
``deep_compression``  Deep Compression: weight sharing keeping zeros, codebook fine-tuning, per-layer bits
``deploy``            an int8 model as plain arrays, an integer-only NumPy forward, a C header, profiles
``mcu``               that model in C (``course_lib/c``): built here and for a Cortex-M4, run in QEMU, measured
``zoo``               the store of pretrained baselines: recipes, safetensors + checksums, ``load``
``zoo_build``         the zoo's builds: each model trained from its recipe by the techniques above
``experiments``       the panels' experiments: a zoo model through one technique's workflow, measured
``planner``           the compression planner: measured combinations filtered for a device and a floor
``widgets``           the ipywidgets panels
``exercises``         checkers for learners' code (the student-notebook builder and the site are
                      tooling, in the separate package ``course_tools``)
====================  ==========================================================================
"""

__version__ = "0.1.0"
