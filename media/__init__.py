"""Audio only: frames, G.711, resampling, VAD, ASR, TTS, turn-taking. No SIP, HTTP or Redis."""
