"""MRI cartilage segmenter: network, training, sliding-window inference."""
