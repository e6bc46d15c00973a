"""Local web demo (``facesr demo``): upload a photo, pick a model, see and download the result.

Gradio is an optional extra (``pip install 'facesr[demo]'``), so nothing here imports it at
package import time; :mod:`facesr.demo.app` imports it when the demo is built.
"""
