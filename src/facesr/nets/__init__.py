"""facesr.nets"""
