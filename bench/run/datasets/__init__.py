"""Where a run's examples come from, one module per source plus what they share:

    spec           what a run trains on, resolved once into the plan (``DataSpec``, exit 2 on bad input)
    feeds          one interface over every source: a rank's batches, examples, labels, evaluation
    fashion_mnist  Fashion-MNIST files, resident on the training device
    image_folder   a folder of images (train/, val/) decoded by DataLoader workers
    synthetic      random images held on the device
"""
