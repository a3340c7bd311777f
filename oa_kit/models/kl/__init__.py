"""KL-grade CNN: network, training, calibration, conformal sets, inference."""
