"""Drop-in modules for code written against other registry libraries, built on dreg-frames' client.

``import dreg_frames.compat.dreg_client as dreg_client`` gives dreg-client 1.2.0's API.
"""
