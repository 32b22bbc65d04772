import numpy as np
import torch

from worldcast.world.classifier import BINS, SceneClassifier, frame_features, simulator_frames
from worldcast.world.sim import Scene


def test_soft_histogram_sums_to_one_per_frame():
    frames = np.random.default_rng(0).integers(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    hist = frame_features(frames)[:, : BINS**3]
    assert torch.allclose(hist.pow(2).sum(1), torch.ones(3), atol=1e-5)  # features are sqrt(histogram)


def test_classifier_labels_held_out_simulator_frames_even_when_blurred():
    classifier = SceneClassifier.fit(per_scene=20, epochs=200)
    frames, labels = simulator_frames(4, seed=12345)
    assert np.mean([p.index == y for p, y in zip(classifier.predict(frames), labels)]) >= 0.9
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    blurred = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    blurred = blurred.round().to(torch.uint8).permute(0, 2, 3, 1)
    assert np.mean([p.index == y for p, y in zip(classifier.predict(blurred), labels)]) >= 0.8
    grey = np.full((4, 64, 64, 3), 128, np.uint8)  # a grey frame is not a forest at day
    assert classifier.accuracy(grey, Scene("forest", "day")) == 0.0
