"""Kaggle audio-tagging submission kit.

Data flows one way: data -> features -> folds/training -> predictions -> ensemble -> submission.
Importing the package is cheap: TensorFlow, librosa and the Kaggle client are imported only by the
steps that need them.
"""

__version__ = "0.1.0"
