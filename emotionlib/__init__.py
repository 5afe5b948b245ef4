"""Shared face-emotion code used by both serving (service.py) and training/.

Everything here is light: numpy, OpenCV and Pillow only, no Keras import, so the
API process starts fast and the Bento carries only what serving needs.
"""
