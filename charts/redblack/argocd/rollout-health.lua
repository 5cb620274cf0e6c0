-- Argo CD health check for redblack.io/v1alpha1 Rollout.
-- Lua 5.1 (Argo CD runs it in gopher-lua with the object in the global `obj`).
-- The mapping, and why, is in docs/gitops.md; tests/gitops.rs runs this file
-- under a real Lua 5.1 on Rollouts recorded from real runs.
local hs = {}

local function condition(status, wanted)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- The condition's message, or `fallback` when it has none.
local function said(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to report a status"
  return hs
end

-- A status written for an older spec says nothing about the current one.
local generation = obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "waiting for the controller to observe generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local ready = condition(status, "Ready")
local stalled = condition(status, "Stalled")

-- Stalled: nothing moves until a person acts (abort, failed canary, deadline,
-- missing Service, invalid spec, a write the API refuses).
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = said(stalled, "stalled")
  return hs
end

if phase == "Degraded" or phase == "Aborted" or phase == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = said(ready, "phase " .. phase)
  return hs
end

-- Paused: spec.paused, a manual promotion, a closed promotion window, or a
-- Marginal/Inconclusive canary held for a person. Waiting, not broken.
if phase == "Paused" then
  hs.status = "Suspended"
  if is_true(ready) then
    hs.message = said(condition(status, "Paused"), "spec.paused is true")
  else
    hs.message = said(ready, "paused")
  end
  return hs
end

if phase == "Progressing" then
  hs.status = "Progressing"
  hs.message = said(ready, said(condition(status, "Reconciling"), "progressing"))
  return hs
end

if phase == "Healthy" then
  if is_true(ready) then
    hs.status = "Healthy"
    hs.message = said(ready, "healthy")
  else
    hs.status = "Progressing"
    hs.message = said(ready, "waiting for the Ready condition")
  end
  return hs
end

-- A phase this check does not know (a newer operator): say so, do not guess.
hs.status = "Unknown"
if phase == nil then
  hs.message = "the status has no phase"
else
  hs.message = "unrecognised phase " .. tostring(phase)
end
return hs
