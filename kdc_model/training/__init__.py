"""Training and evaluation: recipes, data (COCO files, augmentation, copy-paste, targets), losses,
the training loop (python -m kdc_model.training.train), COCO evaluation (python -m
kdc_model.training.evaluate), pseudo-keypoints from a teacher, synthetic scenes and fit reports."""
