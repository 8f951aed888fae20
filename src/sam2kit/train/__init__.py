"""Training: SAM 2's loss, interactive prompt simulation, data sets, synthetic scenes, a mini preset.

Modules (imported where used; importing this package imports nothing heavy):

- :mod:`sam2kit.train.losses`: focal + dice + IoU + object-score loss over interactive steps.
- :mod:`sam2kit.train.prompts`: first prompts (point, box, mask) and correction clicks.
- :mod:`sam2kit.train.data`: image folders, COCO JSON, DAVIS / SA-V videos, augmentations.
- :mod:`sam2kit.train.synthetic`: seeded synthetic scenes and clips of moving shapes.
- :mod:`sam2kit.train.mini`: the scaled-down ``sam2kit-mini`` configuration.
"""
