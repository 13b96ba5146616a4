"""Image loading, dataset formats, sample data and transforms.

The robust decoder is ``imgrec.data.images.load_image``; datasets load with
``imgrec.data.dataset.load_classification_data``.
"""
