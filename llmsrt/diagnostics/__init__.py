"""Measurements of what a model does with its inputs: the audio gain (`audio_gain`: does the model use the audio?),
shared by training's stage reports and evaluation. Imports only the model files at the package root; nothing here
ships inside a saved model folder."""
