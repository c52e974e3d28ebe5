"""Training and inference of the further separation systems.

- :mod:`.unet_train`: U-Net spectrogram mask (Jansson et al. 2017), vocals vs
  accompaniment and speech vs music.
- :mod:`.speech`: espeak-ng speech over the demo music (the speech task's data).
- :mod:`.sed`: weakly labelled clips and the sound-event detector / tagger training.
- :mod:`.query_train`: query-based zero-shot separation (Chen et al. 2022).
- :mod:`.tagbox_steer`: TAGBOX-style steering (Manilow et al. 2022).
- :mod:`.render`: stems of any of these checkpoints into ``<out>/<track>/<source>.wav``.
- :mod:`.cli`: click commands (torch is imported inside the command bodies).

The models live in :mod:`separation.models` (``"unet"``, ``"query"``, ``"tagbox"``).
"""
